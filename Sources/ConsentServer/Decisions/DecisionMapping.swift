import ConsentModel
import ConsentStore
import ConsentWire
import PolicyEngine
import SwiftProtobuf

extension PolicySet {
    /// The wire form of a decision made under this set, reading `sequence` of the consent store.
    func checkResponse(_ decision: Decision, sequence: UInt64) -> Consentd_V1_CheckResponse {
        var response = Consentd_V1_CheckResponse()
        response.decision = Consentd_V1_Decision(decision.effect)
        response.reason = Consentd_V1_Reason(decision.reason)
        response.policyRevision = revision
        response.consentSequence = sequence
        if decision.ruleIndex >= 0 {
            let rule = rules[Int(decision.ruleIndex)]
            response.ruleID = rule.id
            response.ruleLocation = rule.location.description
            if decision.isAllowed { response.obligations = rule.obligations }
        }
        if let basis = decision.legalBasis { response.legalBasis = Consentd_V1_LegalBasis(basis) }
        if let record = decision.record { response.consentRecord = wireRecord(record) }
        return response
    }

    /// The compact result of one batch item.
    func checkResult(_ decision: Decision) -> Consentd_V1_CheckResult {
        var result = Consentd_V1_CheckResult()
        result.decision = Consentd_V1_Decision(decision.effect)
        result.reason = Consentd_V1_Reason(decision.reason)
        if decision.ruleIndex >= 0 {
            let rule = rules[Int(decision.ruleIndex)]
            result.ruleID = rule.id
            if decision.isAllowed && !rule.obligations.isEmpty { result.obligations = rule.obligations }
        }
        if let basis = decision.legalBasis { result.legalBasis = Consentd_V1_LegalBasis(basis) }
        if let record = decision.record { result.consentRecordSequence = record.sequence }
        return result
    }

    /// A compact record as the wire shows a relied-on record (the subject is the request's).
    func wireRecord(_ record: CompactRecord) -> Consentd_V1_ConsentRecord {
        let summary = summary(of: record)
        var wire = Consentd_V1_ConsentRecord()
        wire.sequence = summary.sequence
        wire.purpose = summary.purpose
        wire.dataCategory = summary.dataCategory ?? ""
        wire.choice = Consentd_V1_Choice(summary.choice)
        wire.recordedAt = Google_Protobuf_Timestamp(summary.recordedAt)
        if let expires = summary.expiresAt { wire.expiresAt = Google_Protobuf_Timestamp(expires) }
        wire.source = summary.source
        if let notice = summary.noticeVersion { wire.noticeVersion = notice }
        wire.legalBasis = Consentd_V1_LegalBasis(summary.legalBasis)
        return wire
    }

    /// The wire form of an explanation.
    func wireExplanation(_ explanation: Explanation) -> Consentd_V1_Explanation {
        var wire = Consentd_V1_Explanation()
        wire.rules = explanation.rules.map { entry in
            Consentd_V1_RuleTrace.with {
                $0.ruleID = entry.rule.id
                $0.location = entry.rule.location.description
                $0.effect = entry.rule.effect.description
                $0.outcome = entry.outcome.description
            }
        }
        wire.records = explanation.records.enumerated().map { index, entry in
            Consentd_V1_RecordTrace.with {
                $0.sequence = entry.record.sequence
                $0.summary = entry.record.text
                $0.covers = entry.covers
                $0.valid = entry.valid
                $0.effective = index == explanation.effectiveRecord
            }
        }
        wire.text = explanation.text
        return wire
    }
}

extension Diagnostic {
    var wire: Consentd_V1_Diagnostic {
        Consentd_V1_Diagnostic.with {
            $0.file = location.file
            $0.line = UInt32(clamping: location.line)
            $0.column = UInt32(clamping: location.column)
            $0.severity = severity.rawValue
            $0.code = code
            $0.message = message
            $0.hint = hint ?? ""
        }
    }
}

extension ErasureTombstone {
    var wire: Consentd_V1_Erasure {
        Consentd_V1_Erasure.with {
            $0.sequence = sequence
            $0.subjectHash = subjectHash
            $0.erasedAt = Google_Protobuf_Timestamp(erasedAt)
            $0.recordCount = UInt32(clamping: recordCount)
        }
    }
}
