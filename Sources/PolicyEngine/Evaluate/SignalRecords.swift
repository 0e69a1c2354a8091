import ConsentModel
import ConsentSignals
import Crypto

/// Why a signal string cannot be stored as consent records.
public struct SignalConsentError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension PolicySet {
    /// The consent records a CMP's signal string implies for its customer, in this set's taxonomy
    /// (see `SignalConsent` in the protocol for the rules): per purpose key mapped to TCF purposes,
    /// the TC string's grant or deny at its LastUpdated (with a grant, a deny for each data
    /// category whose special feature is not opted in); per `sale_or_sharing` purpose key, a deny
    /// now for a US opt-out of sale or sharing. Pure: the caller validates and stores them.
    public func records(implying signal: SignalConsent, now: Timestamp) throws(SignalConsentError) -> [ConsentRecord] {
        let given = [("tc_string", signal.tcString), ("gpp_string", signal.gppString), ("us_privacy", signal.usPrivacy)].filter { !($0.1 ?? "").isEmpty }
        guard given.count == 1, let (name, text) = given.first.map({ ($0.0, $0.1!) }) else {
            throw SignalConsentError("give exactly one of tc_string, gpp_string and us_privacy (got \(given.count))")
        }
        guard text.utf8.count <= RequestContext.maximumSignalBytes else {
            throw SignalConsentError("\(name) is \(text.utf8.count) bytes; the limit is \(RequestContext.maximumSignalBytes)")
        }
        let evidence = text.utf8.count <= ConsentRecord.maximumEvidenceBytes ? text : "sha256:" + SHA256.hash(data: Array(text.utf8)).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        var records: [ConsentRecord] = []
        func record(_ purpose: String, _ data: String?, _ choice: Choice, _ at: Timestamp, _ source: String) {
            records.append(ConsentRecord(
                subject: signal.subject, purpose: purpose, dataCategory: data, choice: choice, recordedAt: at,
                source: source, noticeVersion: signal.noticeVersion, jurisdiction: signal.jurisdiction, evidence: evidence
            ))
        }
        if let requested = signal.tcfVendorId, requested < 1 || requested > RequestContext.maximumTCFVendorId {
            throw SignalConsentError("tcf_vendor_id \(requested) is not a TCF vendor id (1 to \(RequestContext.maximumTCFVendorId))")
        }
        let vendor = signalVendor(signal.tcfVendorId)
        func storeTCF(_ tc: TCFString, source: String) {
            let at = Timestamp(microseconds: tc.lastUpdatedMicroseconds)
            let choice = tc.choice(of: vendor)
            for key in purposes.keys {
                guard let mapped = purposeAttributes[key]?.tcfPurposes, !mapped.isEmpty else { continue }
                let grants = choice.grants(purposes: mapped.reduce(UInt64(0)) { $0 | 1 << UInt64($1 - 1) })
                record(key, nil, grants ? .grant : .deny, at, source)
                guard grants else { continue }
                for data in dataCategories.keys {
                    guard let feature = dataAttributes[data]?.tcfSpecialFeature, !choice.specialFeatureOptIn(feature) else { continue }
                    record(key, data, .deny, at, source)
                }
            }
        }
        func storeSaleOptOut(_ source: String) {
            for key in purposes.keys where purposeAttributes[key]?.saleOrSharing == true {
                record(key, nil, .deny, now, source)
            }
        }
        let noVendor = SignalConsentError("a TC string grants only to a vendor: give tcf_vendor_id, or set tcf_vendor_id in the policy taxonomy")
        var copy = text
        let failure: SignalConsentError? = copy.withUTF8 { utf8 -> SignalConsentError? in
            let bytes = UnsafeRawBufferPointer(utf8)
            do throws(SignalError) {
                switch name {
                case "tc_string":
                    let tc = try TCFString(parsing: bytes)
                    guard vendor > 0 else { return noVendor }
                    storeTCF(tc, source: CompactRecord.tcfSourceName)
                case "us_privacy":
                    if try USPrivacyString(parsing: bytes).optedOutOfSale { storeSaleOptOut("usp") }
                default:
                    let gpp = try GPPString(parsing: bytes)
                    if let tc = gpp.tcfEuV2() {
                        guard vendor > 0 else { return noVendor }
                        storeTCF(tc, source: CompactRecord.tcfSourceName)  // a TCF choice, whichever string carried it
                    }
                    var optedOut = gpp.usPrivacy()?.optedOutOfSale == true
                    for id in SensitivePositions.sections {
                        guard let section = gpp.usSection(id) else { continue }
                        if section.optsOutOfSaleOrSharing { optedOut = true }
                    }
                    if optedOut { storeSaleOptOut("gpp") }
                }
                return nil
            } catch {
                return SignalConsentError("\(name) cannot be read: \(error)")
            }
        }
        if let failure { throw failure }
        return records
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
