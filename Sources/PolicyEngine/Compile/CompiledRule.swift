import ConsentModel

/// Request signals a rule's `unless` can test.
public enum RequestSignal: String, CaseIterable, Sendable {
    /// A Global Privacy Control signal accompanied the request.
    case gpc
    /// A US Privacy string said the customer opted out of sale.
    case uspOptOut = "usp_opt_out"
    /// For a purpose the taxonomy marks `sale_or_sharing`: GPC, a US Privacy opt-out of sale, or
    /// an applicable GPP US section's SaleOptOut, SharingOptOut or Gpc set (value 1).
    case saleOptOut = "sale_opt_out"
    /// An applicable GPP US section's TargetedAdvertisingOptOut is set (value 1).
    case targetedAdvertisingOptOut = "targeted_advertising_opt_out"
    /// An applicable GPP US section's SensitiveDataProcessing is 1 at the data category's
    /// position (`gpp_sensitive_data` in the taxonomy).
    case sensitiveDataOptOut = "sensitive_data_opt_out"

    var bit: UInt8 {
        switch self {
        case .gpc: 1
        case .uspOptOut: 2
        case .saleOptOut: 4
        case .targetedAdvertisingOptOut: 8
        case .sensitiveDataOptOut: 16
        }
    }
}

/// What a permission needs to hold.
public enum Requirement: Hashable, Sendable, CustomStringConvertible {
    /// The effective record must be a grant.
    case optIn
    /// The effective record must not be a deny.
    case optOut
    /// No consent needed; the basis is reported.
    case basis(LegalBasis)

    public var description: String {
        switch self {
        case .optIn: "consent: opt_in"
        case .optOut: "consent: opt_out"
        case let .basis(basis): "basis: \(basis)"
        }
    }
}

/// The fixed-width part of a rule the evaluator reads on the hot path.
struct RuleCore: Sendable {
    var effect: Effect
    /// 0 opt_in, 1 opt_out, 2 basis (permissions only).
    var requirementKind: UInt8
    var basis: LegalBasis
    var hasUnless: Bool
    /// Prohibition lifted only if the effective record is a grant.
    var unlessConsent: Bool
    var unlessSignalsTrue: UInt8
    var unlessSignalsFalse: UInt8
    /// `unless: {any_of: [...]}`: at least one of these signals must be present.
    var unlessSignalsAny: UInt8
    var minNotice: UInt32
    var maxAge: Int64
    var channelMask: UInt64
    var dataStart: Int32
    var dataCount: Int32
}

/// Everything about a rule that reports, traces and tooling need.
public struct RuleInfo: Sendable {
    /// The rule's id, unique in the set.
    public let id: String
    /// Where the rule is written.
    public let location: SourceLocation
    /// The `description:` text.
    public let description: String?
    /// Allow (permission) or deny (prohibition).
    public let effect: Effect
    /// The requirement of a permission; nil for a prohibition.
    public let requirement: Requirement?
    /// Purpose keys; empty = every purpose.
    public let purposes: [String]
    /// Data keys; empty = every data category.
    public let data: [String]
    /// Jurisdiction elements as written; nil = every request.
    public let jurisdictions: [String]?
    /// Channels; nil = every channel.
    public let channels: [String]?
    /// `max_age`, if any.
    public let maxAge: TimeSpan?
    /// `min_notice_version`, if any.
    public let minNoticeVersion: UInt32?
    /// `unless` rendered for people, e.g. `gpc: true`.
    public let unless: String?
    /// Obligations returned with an allow.
    public let obligations: [String]
    /// Position in the set (files in path order, rules in file order).
    public let order: Int
}
