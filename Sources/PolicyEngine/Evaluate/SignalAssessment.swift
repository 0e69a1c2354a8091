import ConsentModel
import ConsentSignals

/// What a request's consent signals say, read once per request (a batch's items share them) from
/// the strings' bytes: the US opt-outs, the TC string that applies, and which strings are
/// malformed. Plain values: it borrows nothing from the strings it was read from.
public struct SignalAssessment {
    /// GPC, or a US Privacy string opting out of sale (or the `usp_opt_out` boolean).
    var gpc = false
    var uspOptOut = false
    /// An applicable GPP US section's SaleOptOut, SharingOptOut or Gpc is 1.
    var gppSaleOptOut = false
    var targetedAdvertisingOptOut = false
    /// Per US section (7…12): bit p-1 set when SensitiveDataProcessing position p is 1.
    var sensitiveOptOuts = SensitiveMasks()
    /// What the TC string that applies says for the vendor asking (`vendorId`), read once for
    /// every purpose and batch item, when the string reads well.
    var tcf: TCFChoice?
    /// The TCF applies (a TC string given, or section 2 among the GPP string's applicable sections).
    var tcfApplies = false
    /// The TCF applies but its string cannot be read: consent under it is unknown.
    var tcfUnknown = false
    /// A US Privacy string (or a GPP string that may carry one) cannot be read: `usp_opt_out`
    /// and `sale_opt_out` are unknown.
    var uspUnknown = false
    /// A GPP string that may carry US sections cannot be read: every US opt-out is unknown.
    var usUnknown = false
    /// The vendor TC strings are checked for (0: none known, so no TC string grants).
    var vendorId = 0
    /// Each malformed string and why, for the answer's message.
    private var uspProblem: SignalError?
    private var tcProblem: SignalError?
    private var gppProblem: SignalError?

    /// No signal strings: only the two booleans.
    public init(gpc: Bool = false, uspOptOut: Bool = false) {
        self.gpc = gpc
        self.uspOptOut = uspOptOut
    }

    /// Whether some string could not be read.
    public var hasProblem: Bool { uspProblem != nil || tcProblem != nil || gppProblem != nil }

    /// The applicable GPP sections as a mask (bit i: section i; GPP ids are below 64).
    public static func sectionMask<S: Sequence>(_ ids: S) -> UInt64 where S.Element == UInt32 {
        ids.reduce(0) { $1 < 64 ? $0 | 1 << UInt64($1) : $0 }
    }

    /// Reads the strings. `gppSectionIdsGiven` false: every section the GPP string carries applies;
    /// else those in `gppSectionMask`.
    public init(
        gpc: Bool, uspOptOut: Bool, tcString: UnsafeRawBufferPointer?, gppString: UnsafeRawBufferPointer?,
        gppSectionMask: UInt64, gppSectionIdsGiven: Bool, usPrivacy: UnsafeRawBufferPointer?, vendorId: Int,
        tcfCache: TCFStringCache? = nil
    ) {
        self.init(gpc: gpc, uspOptOut: uspOptOut)
        self.vendorId = vendorId
        let limit = RequestContext.maximumSignalBytes
        if let usPrivacy, usPrivacy.count > 0 {
            do throws(SignalError) {
                guard usPrivacy.count <= limit else { throw Self.tooLong(.usp, usPrivacy.count) }
                if try USPrivacyString(parsing: usPrivacy).optedOutOfSale { self.uspOptOut = true }
            } catch {
                uspUnknown = true
                uspProblem = error
            }
        }
        if let tcString, tcString.count > 0 {
            tcfApplies = true
            do throws(SignalError) {
                guard tcString.count <= limit else { throw Self.tooLong(.tcf, tcString.count) }
                tcf = if let tcfCache { try tcfCache.choice(tcString, vendor: vendorId) } else { try TCFString(parsing: tcString).choice(of: vendorId) }
            } catch {
                tcfUnknown = true
                tcProblem = error
            }
        }
        guard let gppString, gppString.count > 0 else { return }
        let applies = { (id: Int) in !gppSectionIdsGiven || (id < 64 && gppSectionMask & (1 << UInt64(id)) != 0) }
        let gpp: GPPString
        do throws(SignalError) {
            guard gppString.count <= limit else { throw Self.tooLong(.gpp, gppString.count) }
            gpp = try GPPString(parsing: gppString)
        } catch {
            // What the string could have said: the sections its header lists (all, if even the
            // header cannot be read) that the request says apply.
            var headerEnd = 0
            while headerEnd < gppString.count, gppString[headerEnd] != UInt8(ascii: "~") { headerEnd += 1 }
            let header = gppString.count <= limit ? try? GPPHeader(parsing: UnsafeRawBufferPointer(rebasing: gppString[0..<headerEnd])) : nil
            let mayCarry = { (id: Int) -> Bool in
                guard applies(id) else { return false }
                guard let header else { return true }
                var listed = false
                header.forEachId { listedId in
                    if listedId == id { listed = true }
                    return listedId < id
                }
                return listed
            }
            if mayCarry(GPPSectionId.tcfEuV2) && !tcfApplies {
                tcfApplies = true
                tcfUnknown = true
            }
            if mayCarry(GPPSectionId.usPrivacy) { uspUnknown = true }
            if SensitivePositions.sections.contains(where: mayCarry) { usUnknown = true }
            gppProblem = error
            return
        }
        // One pass over the sections the request says apply (each was checked by the parse).
        let takeTCF = tcf == nil && !tcfUnknown
        var sectionTCF: TCFChoice?
        var uspFromGPP = false, saleOptOut = false, targetedOptOut = false
        var sensitive = SensitiveMasks()
        gpp.forEachSection { id, text in
            guard applies(id) else { return true }
            switch id {
            case GPPSectionId.tcfEuV2:
                if takeTCF { sectionTCF = (try? TCFString(parsing: text, signal: .gpp))?.choice(of: vendorId) }
            case GPPSectionId.usPrivacy:
                if (try? USPrivacyString(parsing: text, signal: .gpp))?.optedOutOfSale == true { uspFromGPP = true }
            case GPPSectionId.usNational, GPPSectionId.usStates:
                guard let section = try? USSection(section: id, parsing: text) else { break }
                if section.optsOutOfSaleOrSharing { saleOptOut = true }
                if section.value(.targetedAdvertisingOptOut) == 1 { targetedOptOut = true }
                sensitive[id] = section.positions(of: .sensitiveDataProcessing, equalTo: 1)
            default:
                break
            }
            return true
        }
        if let sectionTCF {
            tcfApplies = true
            tcf = sectionTCF
        }
        if uspFromGPP { self.uspOptOut = true }
        if saleOptOut { gppSaleOptOut = true }
        if targetedOptOut { targetedAdvertisingOptOut = true }
        sensitiveOptOuts = sensitive
    }

    static func tooLong(_ kind: SignalKind, _ count: Int) -> SignalError {
        SignalError(kind, segment: "string", field: "(length)", bitOffset: 0, problem: .tooLong(bytes: count, limit: RequestContext.maximumSignalBytes))
    }

    /// The answer's message for a decision denied `INVALID_SIGNAL`: every string that cannot be
    /// read and why (a decision may depend on more than one of them).
    public var problemMessage: String? {
        let parts = [("tc_string", tcProblem), ("gpp_string", gppProblem), ("us_privacy", uspProblem)].compactMap { name, error in
            error.map { "\(name) cannot be read: \($0)" }
        }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }
}

/// Per US section (7…12), a 32-bit mask of SensitiveDataProcessing positions set to 1.
struct SensitiveMasks {
    var masks: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0, 0, 0)

    var isEmpty: Bool { masks == (0, 0, 0, 0, 0, 0) }

    subscript(id: Int) -> UInt32 {
        get {
            switch id {
            case 7: masks.0
            case 8: masks.1
            case 9: masks.2
            case 10: masks.3
            case 11: masks.4
            case 12: masks.5
            default: 0
            }
        }
        set {
            switch id {
            case 7: masks.0 = newValue
            case 8: masks.1 = newValue
            case 9: masks.2 = newValue
            case 10: masks.3 = newValue
            case 11: masks.4 = newValue
            case 12: masks.5 = newValue
            default: break
            }
        }
    }
}

extension PolicySet {
    /// Reads `context`'s signal strings in place and runs `body` with what they say.
    public func withSignals<R>(_ context: RequestContext, _ body: (SignalAssessment) throws -> R) rethrows -> R {
        guard context.hasSignalStrings else { return try body(SignalAssessment(gpc: context.gpc, uspOptOut: context.uspOptOut)) }
        let vendor = signalVendor(context.tcfVendorId)
        let mask = SignalAssessment.sectionMask(context.gppSectionIds)
        let given = !context.gppSectionIds.isEmpty
        return try Self.withBytes(context.tcString) { tc in
            try Self.withBytes(context.gppString) { gpp in
                try Self.withBytes(context.usPrivacy) { usp in
                    try body(SignalAssessment(
                        gpc: context.gpc, uspOptOut: context.uspOptOut, tcString: tc, gppString: gpp,
                        gppSectionMask: mask, gppSectionIdsGiven: given,
                        usPrivacy: usp, vendorId: vendor
                    ))
                }
            }
        }
    }

    /// The vendor a request's TC strings are checked for: the request's own, else the set's
    /// `tcf_vendor_id` (0: none, so no TC string grants).
    @inline(__always)
    public func signalVendor(_ requested: UInt32?) -> Int { Int(requested ?? UInt32(tcfVendorId ?? 0)) }

    static func withBytes<R>(_ string: String?, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        guard var string else { return try body(nil) }
        return try string.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}
