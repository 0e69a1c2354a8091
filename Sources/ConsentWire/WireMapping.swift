import ConsentModel
import SwiftProtobuf

extension Google_Protobuf_Timestamp {
    /// The wire form of a model timestamp (`Timestamp.secondsAndNanos`, total for every value).
    public init(_ timestamp: Timestamp) {
        let (seconds, nanos) = timestamp.secondsAndNanos
        self.init(seconds: seconds, nanos: nanos)
    }

    /// The model form of a timestamp that came from outside, range-checked: nil unless nanos are
    /// in [0, 10⁹) and the instant lies in 0001-01-01…9999-12-31.
    public var validatedModel: Timestamp? { Timestamp(seconds: seconds, nanos: nanos) }

    /// The model form for display of a value this process trusts (a daemon's answer): clamped
    /// into the valid range instead of failing, never trapping.
    public var model: Timestamp {
        if let valid = validatedModel { return valid }
        return seconds < 0 ? .minimumValid : .maximumValid
    }

    /// The validated model form, or a `WireRecordError` naming `field`.
    public func model(field: String) throws(WireRecordError) -> Timestamp {
        guard let valid = validatedModel else {
            throw WireRecordError(message: "\(field) (seconds \(seconds), nanos \(nanos)) must lie in 0001-01-01T00:00:00Z…9999-12-31T23:59:59Z with nanos in [0, 999999999]")
        }
        return valid
    }
}

extension Consentd_V1_Reason {
    /// The wire form of a reason code (same numbers).
    public init(_ code: ReasonCode) { self = Consentd_V1_Reason(rawValue: Int(code.rawValue)) ?? .unspecified }

    /// The model form, or nil for UNSPECIFIED or an unknown value.
    public var model: ReasonCode? { ReasonCode(rawValue: UInt8(clamping: rawValue)) }
}

extension Consentd_V1_Decision {
    /// The wire form of an effect.
    public init(_ effect: Effect) { self = effect == .allow ? .allow : .deny }
}

extension Consentd_V1_LegalBasis {
    /// The wire form of a legal basis.
    public init(_ basis: LegalBasis) { self = Consentd_V1_LegalBasis(rawValue: Int(basis.rawValue) + 1) ?? .unspecified }

    /// The model form; UNSPECIFIED means consent.
    public var model: LegalBasis? {
        guard rawValue >= 0, rawValue <= Int(UInt8.max) else { return nil }  // UNRECOGNIZED(-5) is not consent
        return self == .unspecified ? .consent : LegalBasis(rawValue: UInt8(rawValue - 1))
    }
}

extension Consentd_V1_Choice {
    /// The wire form of a choice.
    public init(_ choice: Choice) { self = choice == .grant ? .grant : .deny }

    /// The model form, or nil for UNSPECIFIED.
    public var model: Choice? {
        switch self {
        case .grant: .grant
        case .deny: .deny
        default: nil
        }
    }
}

extension Consentd_V1_Context {
    /// The model form, range-checked; `at` unset means "now".
    /// Empty signal strings are absent; `tcf_vendor_id` 0 means the policy set's vendor.
    public func model() throws(WireRecordError) -> RequestContext {
        var context = RequestContext(
            jurisdiction: jurisdiction.isEmpty ? nil : jurisdiction, gpc: gpc, uspOptOut: uspOptOut,
            channel: channel.isEmpty ? nil : channel, at: hasAt ? try at.model(field: "context.at") : nil
        )
        context.setSignals(tcString: tcString, gppString: gppString, gppSectionIds: gppSid, usPrivacy: usPrivacy, tcfVendorId: tcfVendorID)
        context.minSequence = minSequence
        return context
    }

    /// The wire form of a model context.
    public init(_ context: RequestContext) {
        self.init()
        jurisdiction = context.jurisdiction ?? ""
        gpc = context.gpc
        uspOptOut = context.uspOptOut
        channel = context.channel ?? ""
        if let at = context.at { self.at = Google_Protobuf_Timestamp(at) }
        tcString = context.tcString ?? ""
        gppString = context.gppString ?? ""
        gppSid = context.gppSectionIds
        usPrivacy = context.usPrivacy ?? ""
        tcfVendorID = context.tcfVendorId ?? 0
        minSequence = context.minSequence
    }
}

/// A wire record that cannot become a model record.
public struct WireRecordError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

extension Consentd_V1_ConsentRecord {
    /// The wire form of a stored record.
    public init(_ record: ConsentRecord) {
        self.init()
        subjectID = record.subject
        purpose = record.purpose
        dataCategory = record.dataCategory ?? ""
        choice = Consentd_V1_Choice(record.choice)
        recordedAt = Google_Protobuf_Timestamp(record.recordedAt)
        if let expires = record.expiresAt { expiresAt = Google_Protobuf_Timestamp(expires) }
        legalBasis = Consentd_V1_LegalBasis(record.legalBasis)
        source = record.source
        if let notice = record.noticeVersion { noticeVersion = notice }
        jurisdiction = record.jurisdiction ?? ""
        evidence = record.evidence ?? ""
        sequence = record.sequence
    }

    /// The model form for storing; `recorded_at` unset means `now`, an empty source means "api".
    /// Times are range-checked here; everything else by the store's validation.
    public func model(now: Timestamp) throws(WireRecordError) -> ConsentRecord {
        guard let choice = choice.model else { throw WireRecordError(message: "choice must be CHOICE_GRANT or CHOICE_DENY") }
        guard let basis = legalBasis.model else { throw WireRecordError(message: "unknown legal basis \(legalBasis.rawValue)") }
        return ConsentRecord(
            subject: subjectID, purpose: purpose, dataCategory: dataCategory.isEmpty ? nil : dataCategory, choice: choice,
            recordedAt: hasRecordedAt ? try recordedAt.model(field: "recorded_at") : now,
            expiresAt: hasExpiresAt ? try expiresAt.model(field: "expires_at") : nil,
            legalBasis: basis, source: source.isEmpty ? "api" : source, noticeVersion: hasNoticeVersion ? noticeVersion : nil,
            jurisdiction: jurisdiction.isEmpty ? nil : jurisdiction, evidence: evidence.isEmpty ? nil : evidence
        )
    }
}

extension Consentd_V1_SignalConsent {
    /// The model form; empty strings are absent, vendor 0 is the policy set's.
    public var model: SignalConsent {
        SignalConsent(
            subject: subjectID, tcString: tcString.isEmpty ? nil : tcString, gppString: gppString.isEmpty ? nil : gppString,
            usPrivacy: usPrivacy.isEmpty ? nil : usPrivacy, tcfVendorId: tcfVendorID == 0 ? nil : tcfVendorID,
            jurisdiction: jurisdiction.isEmpty ? nil : jurisdiction, noticeVersion: hasNoticeVersion ? noticeVersion : nil
        )
    }

    /// What identifies a RecordConsent with this signal under an idempotency key (the daemon and
    /// `consentctl consent signal --store` alike): a 0 byte — no record's fingerprint starts with
    /// one — then the message as SwiftProtobuf writes it.
    public func idempotencyPayload() throws -> [UInt8] {
        [0] + (try serializedBytes())
    }

    /// The wire form of a model signal.
    public init(_ signal: SignalConsent) {
        self.init()
        subjectID = signal.subject
        tcString = signal.tcString ?? ""
        gppString = signal.gppString ?? ""
        usPrivacy = signal.usPrivacy ?? ""
        tcfVendorID = signal.tcfVendorId ?? 0
        jurisdiction = signal.jurisdiction ?? ""
        if let notice = signal.noticeVersion { noticeVersion = notice }
    }
}

extension Consentd_V1_Response {
    /// An error response.
    public static func error(id: UInt64, _ code: Consentd_V1_ErrorCode, _ message: String) -> Consentd_V1_Response {
        var response = Consentd_V1_Response()
        response.id = id
        response.error = Consentd_V1_Error.with {
            $0.code = code
            $0.message = message
        }
        return response
    }
}
