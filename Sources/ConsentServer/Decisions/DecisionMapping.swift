import ConsentModel
import ConsentStore
import ConsentWire
import PolicyEngine
import SwiftProtobuf

extension PolicySet {
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
