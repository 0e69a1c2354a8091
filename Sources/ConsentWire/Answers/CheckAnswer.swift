import ConsentModel

/// A policy set's strings as Check answers carry them, encoded once per set: the revision and,
/// per rule, its id, location and obligations as complete fields, back to back in one array.
/// Answers then copy byte ranges of it — no reference counting per field on the hot path.
public final class EncodedPolicy: Sendable {
    /// Every encoded field, back to back.
    public let bytes: [UInt8]
    /// `CheckResponse.policy_revision` (field 4).
    public let checkRevision: Range<Int>
    /// `CheckBatchResponse.policy_revision` (field 2).
    public let batchRevision: Range<Int>
    /// Per rule, in the set's order.
    public let rules: [EncodedRule]

    /// Encodes `revision` and `rules` (id, location, obligations), in the set's rule order.
    public init(revision: String, rules: [(id: String, location: String, obligations: [String])]) {
        var bytes: [UInt8] = []
        func append(_ field: UInt64, _ text: String) -> Range<Int> {
            let start = bytes.count
            WireWriter.stringField(field, text, into: &bytes)
            return start..<bytes.count
        }
        func appendRepeated(_ field: UInt64, _ texts: [String]) -> Range<Int> {
            let start = bytes.count
            for text in texts { WireWriter.repeatedStringElement(field, text, into: &bytes) }
            return start..<bytes.count
        }
        checkRevision = append(4, revision)
        batchRevision = append(2, revision)
        self.rules = rules.map { rule in
            EncodedRule(
                ruleID: append(3, rule.id), checkObligations: appendRepeated(8, rule.obligations),
                location: append(9, rule.location), resultObligations: appendRepeated(5, rule.obligations)
            )
        }
        self.bytes = bytes
    }
}

/// Where one rule's encoded fields lie in `EncodedPolicy.bytes`.
public struct EncodedRule: Sendable {
    /// `rule_id` (field 3 of both CheckResponse and CheckResult).
    public let ruleID: Range<Int>
    /// `CheckResponse.obligations` (field 8, once per obligation).
    public let checkObligations: Range<Int>
    /// `CheckResponse.rule_location` (field 9).
    public let location: Range<Int>
    /// `CheckResult.obligations` (field 5, once per obligation).
    public let resultObligations: Range<Int>
}

/// The consent record an answer relied on, as `ConsentRecord` carries it (the subject is the
/// request's and is not repeated). Enum values are the wire's numbers.
public struct AnswerRecord: Sendable {
    public var purpose: String
    /// Empty: the record covers all data.
    public var dataCategory: String
    public var choice: UInt64
    public var recordedAt: Timestamp
    public var expiresAt: Timestamp?
    public var legalBasis: UInt64
    public var source: String
    public var noticeVersion: UInt32?
    public var sequence: UInt64

    public init(purpose: String, dataCategory: String, choice: UInt64, recordedAt: Timestamp, expiresAt: Timestamp?,
                legalBasis: UInt64, source: String, noticeVersion: UInt32?, sequence: UInt64) {
        self.purpose = purpose
        self.dataCategory = dataCategory
        self.choice = choice
        self.recordedAt = recordedAt
        self.expiresAt = expiresAt
        self.legalBasis = legalBasis
        self.source = source
        self.noticeVersion = noticeVersion
        self.sequence = sequence
    }
}

/// Everything a `CheckResponse` says, in wire terms: the one value both answer paths build and
/// the one writer (`AnswerWriter`) encodes. Enum values are the wire's numbers.
public struct CheckAnswer: Sendable {
    public var decision: UInt64
    public var reason: UInt64
    /// The deciding rule's index in `policy.rules`, or -1 when no rule decided.
    public var ruleIndex: Int32
    /// Whether the rule's obligations come with the answer (an allow).
    public var withObligations: Bool
    public var policy: EncodedPolicy
    public var consentSequence: UInt64
    public var record: AnswerRecord?
    public var legalBasis: UInt64

    public init(decision: UInt64, reason: UInt64, ruleIndex: Int32, withObligations: Bool, policy: EncodedPolicy,
                consentSequence: UInt64, record: AnswerRecord?, legalBasis: UInt64) {
        self.decision = decision
        self.reason = reason
        self.ruleIndex = ruleIndex
        self.withObligations = withObligations
        self.policy = policy
        self.consentSequence = consentSequence
        self.record = record
        self.legalBasis = legalBasis
    }
}

/// What one `CheckResult` of a batch says (the revision and sequence are the batch's).
public struct BatchResult: Sendable {
    public var decision: UInt64
    public var reason: UInt64
    /// Index into the batch's `EncodedPolicy.rules`, or -1.
    public var ruleIndex: Int32
    public var withObligations: Bool
    public var recordSequence: UInt64
    public var legalBasis: UInt64

    public init(decision: UInt64, reason: UInt64, ruleIndex: Int32, withObligations: Bool, recordSequence: UInt64, legalBasis: UInt64) {
        self.decision = decision
        self.reason = reason
        self.ruleIndex = ruleIndex
        self.withObligations = withObligations
        self.recordSequence = recordSequence
        self.legalBasis = legalBasis
    }
}
