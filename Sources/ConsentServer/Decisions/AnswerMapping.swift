import ConsentModel
import ConsentWire
import NIOCore
import PolicyEngine

/// The daemon's outgoing buffer as a sink of the answer writers.
extension ByteBuffer: WireSink {
    @inlinable
    public mutating func writeWireByte(_ byte: UInt8) { writeInteger(byte) }

    @inlinable
    public mutating func writeWireBytes(_ bytes: UnsafeRawBufferPointer) { writeBytes(bytes) }

    @inlinable
    public mutating func writeReserved(_ count: Int, _ body: (inout ReservedWireBytes) -> Void) -> Bool {
        var complete = false
        writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
            var cursor = ReservedWireBytes(UnsafeMutableRawBufferPointer(rebasing: raw[..<count]))
            body(&cursor)
            complete = cursor.isComplete
            return complete ? count : 0
        }
        return complete
    }
}

/// A policy set with its strings encoded for answers (`EncodedPolicy`), kept per connection and
/// renewed when a reload swaps the set.
final class AnswerParts {
    let set: PolicySet
    let policy: EncodedPolicy

    init(set: PolicySet) {
        self.set = set
        policy = EncodedPolicy(revision: set.revision, rules: set.rules.map { ($0.id, $0.location.description, $0.obligations) })
    }

    /// What a Check answer says about `decision`, read at store `sequence` (model → wire).
    @inline(__always)
    func answer(_ decision: Decision, sequence: UInt64) -> CheckAnswer {
        CheckAnswer(
            decision: UInt64(Consentd_V1_Decision(decision.effect).rawValue), reason: UInt64(decision.reason.rawValue),
            ruleIndex: decision.ruleIndex, withObligations: decision.isAllowed, policy: policy, consentSequence: sequence,
            record: decision.record.map(record), legalBasis: decision.legalBasis.map { UInt64(Consentd_V1_LegalBasis($0).rawValue) } ?? 0
        )
    }

    /// What one batch result says about `decision`.
    @inline(__always)
    func result(_ decision: Decision) -> BatchResult {
        BatchResult(
            decision: UInt64(Consentd_V1_Decision(decision.effect).rawValue), reason: UInt64(decision.reason.rawValue),
            ruleIndex: decision.ruleIndex, withObligations: decision.isAllowed, recordSequence: decision.record?.sequence ?? 0,
            legalBasis: decision.legalBasis.map { UInt64(Consentd_V1_LegalBasis($0).rawValue) } ?? 0
        )
    }

    /// The relied-on record as an answer carries it; names as `PolicySet.summary(of:)` gives them.
    func record(_ record: CompactRecord) -> AnswerRecord {
        let summary = set.summary(of: record)
        return AnswerRecord(
            purpose: summary.purpose, dataCategory: summary.dataCategory ?? "", choice: UInt64(Consentd_V1_Choice(summary.choice).rawValue),
            recordedAt: summary.recordedAt, expiresAt: summary.expiresAt, legalBasis: UInt64(Consentd_V1_LegalBasis(summary.legalBasis).rawValue),
            source: summary.source, noticeVersion: summary.noticeVersion, sequence: summary.sequence
        )
    }
}
