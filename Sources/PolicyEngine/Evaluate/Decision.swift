import ConsentModel

/// The hot-path result of a decision: fixed-width, no strings, no allocation.
/// `PolicySet.report(_:)` turns it into the full, printable form.
public struct Decision: Hashable, Sendable {
    /// Allow or deny.
    public var effect: Effect
    /// Why.
    public var reason: ReasonCode
    /// Index into `PolicySet.rules` of the deciding rule, or -1 when no rule decided.
    public var ruleIndex: Int32
    /// The consent record the decision relied on, if any.
    public var record: CompactRecord?
    /// The legal basis an allow rests on (`consent` for consent-based allows); nil for a deny.
    public var legalBasis: LegalBasis?

    /// Creates a decision.
    public init(effect: Effect, reason: ReasonCode, ruleIndex: Int32 = -1, record: CompactRecord? = nil, legalBasis: LegalBasis? = nil) {
        self.effect = effect
        self.reason = reason
        self.ruleIndex = ruleIndex
        self.record = record
        self.legalBasis = legalBasis
    }

    /// A deny with no rule, for requests that cannot be evaluated.
    public static func deny(_ reason: ReasonCode) -> Decision { Decision(effect: .deny, reason: reason) }

    /// Whether the use is allowed.
    @inlinable public var isAllowed: Bool { effect == .allow }
}

/// A request after its names are resolved against one policy set: ids and bits only.
public struct ResolvedRequest: Hashable, Sendable {
    /// Purpose id in the set's vocabulary.
    public var purpose: UInt32
    /// Data-category id in the set's vocabulary.
    public var dataCategory: UInt32
    /// Jurisdiction class in the set's jurisdiction table.
    var jurisdictionClass: Int32
    /// The request's channel bit (bit 63 for no or an unlisted channel).
    var channelBit: UInt64
    /// RequestSignal bits present on the request.
    var signals: UInt8
    /// The instant to decide at.
    public var at: Timestamp
    /// The TC string's choice for this purpose, as a record beside the stored ones (source
    /// `CompactRecord.tcfSource`): a grant at its LastUpdated, or a deny at `at`.
    var signalRecord: CompactRecord?
    /// RequestSignal bits whose value is unknown because their string is malformed.
    var unknownSignals: UInt8 = 0
    /// Consent for this purpose is unknown: the TCF applies, maps the purpose, and its string is malformed.
    var consentUnknown = false
    /// The subject's stored records are not known to be current (the daemon's copy of the store
    /// is stale): every outcome that would look at consent is `CONSENT_UNAVAILABLE`.
    public var consentUnavailable = false
}

/// The consent record that decides for one (purpose, data, instant), computed once per request.
struct EffectiveConsent {
    /// The effective record: the latest valid covering record, deny winning ties.
    var record: CompactRecord?
    /// Whether an expired covering grant was seen (for `CONSENT_EXPIRED`).
    var sawExpiredGrant = false
}
