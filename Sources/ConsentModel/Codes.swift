/// A customer's choice in one consent record.
public enum Choice: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The customer agreed to the use.
    case grant = 1
    /// The customer refused or withdrew.
    case deny = 2

    /// The policy-file and CLI spelling: `grant` or `deny`.
    public var description: String { self == .grant ? "grant" : "deny" }

    /// Parses `grant` / `deny`.
    public init?(name: String) {
        switch name {
        case "grant": self = .grant
        case "deny": self = .deny
        default: return nil
        }
    }
}

/// The lawful basis a record or a permission relies on (GDPR art. 6).
public enum LegalBasis: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case consent = 0
    case contract
    case legalObligation
    case legitimateInterest
    case vitalInterest
    case publicTask

    /// The policy-file spelling, e.g. `legitimate_interest`.
    public var description: String {
        switch self {
        case .consent: "consent"
        case .contract: "contract"
        case .legalObligation: "legal_obligation"
        case .legitimateInterest: "legitimate_interest"
        case .vitalInterest: "vital_interest"
        case .publicTask: "public_task"
        }
    }

    /// Parses the policy-file spelling.
    public init?(name: String) {
        guard let basis = LegalBasis.allCases.first(where: { $0.description == name }) else { return nil }
        self = basis
    }
}

/// Allow or deny.
public enum Effect: UInt8, Sendable, Hashable, CustomStringConvertible {
    case allow = 1
    case deny = 2

    /// `allow` or `deny`.
    public var description: String { self == .allow ? "allow" : "deny" }

    /// Parses `allow` / `deny`.
    public init?(name: String) {
        switch name {
        case "allow": self = .allow
        case "deny": self = .deny
        default: return nil
        }
    }
}

/// Why a decision came out the way it did. The names are part of the public contract.
public enum ReasonCode: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// allow: an `opt_in` permission held because the effective record is a grant.
    case consentGranted = 1
    /// allow: an `opt_out` permission held because the effective record is not a deny.
    case notOptedOut
    /// allow: a permission on a legal basis other than consent matched.
    case legalBasis
    /// deny: a prohibition matched.
    case prohibited
    /// deny: an `opt_in` permission matched but the subject has no covering record.
    case noConsent
    /// deny: the effective record is a deny.
    case consentDenied
    /// deny: no valid covering record, but an expired covering grant exists.
    case consentExpired
    /// deny: the effective grant is older than `max_age` or under a notice older than `min_notice_version`.
    case consentStale
    /// deny: a signal (e.g. Global Privacy Control) defeats the permission.
    case optedOutBySignal
    /// deny: no rule matched; the policy set's default applies.
    case noMatchingRule
    /// deny: the purpose is not in the taxonomy.
    case unknownPurpose
    /// deny: the data category is not in the taxonomy.
    case unknownDataCategory
    /// deny: the request is malformed (empty subject, bad jurisdiction, …) or the policy set is unusable.
    case invalidRequest
    /// deny: a consent signal string (TC string, GPP string, US Privacy string) that could have
    /// changed this decision is malformed.
    case invalidSignal
    /// deny: the daemon's copy of the consent store is not known to be current (too stale, or a
    /// requested `min_sequence` not yet applied) and the decision would have depended on it.
    case consentUnavailable

    /// The contract spelling, e.g. `CONSENT_GRANTED`.
    public var description: String { name.description }

    /// The contract spelling as a static string (for writers that must not build a String).
    public var name: StaticString {
        switch self {
        case .consentGranted: "CONSENT_GRANTED"
        case .notOptedOut: "NOT_OPTED_OUT"
        case .legalBasis: "LEGAL_BASIS"
        case .prohibited: "PROHIBITED"
        case .noConsent: "NO_CONSENT"
        case .consentDenied: "CONSENT_DENIED"
        case .consentExpired: "CONSENT_EXPIRED"
        case .consentStale: "CONSENT_STALE"
        case .optedOutBySignal: "OPTED_OUT_BY_SIGNAL"
        case .noMatchingRule: "NO_MATCHING_RULE"
        case .unknownPurpose: "UNKNOWN_PURPOSE"
        case .unknownDataCategory: "UNKNOWN_DATA_CATEGORY"
        case .invalidRequest: "INVALID_REQUEST"
        case .invalidSignal: "INVALID_SIGNAL"
        case .consentUnavailable: "CONSENT_UNAVAILABLE"
        }
    }

    /// Parses the contract spelling.
    public init?(name: String) {
        guard let code = ReasonCode.allCases.first(where: { $0.description == name }) else { return nil }
        self = code
    }

    /// Whether this reason can only come with an allow.
    public var isAllow: Bool { self == .consentGranted || self == .notOptedOut || self == .legalBasis }
}
