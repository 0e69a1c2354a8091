import ConsentModel

/// The one encoder of Check and CheckBatch answers: `Response{id, check}` and
/// `Response{id, check_batch}` written with their length prefix, fields in number order and
/// proto3 defaults omitted, exactly as protobuf libraries write them (the golden wire vectors hold
/// it to Debian's protoc byte for byte). The daemon's allocation-free path writes into its
/// outgoing buffer with it, and its general path (explain, non-ASCII ids, …) writes the same way,
/// so the two cannot drift apart.
public enum AnswerWriter {
    // Field numbers of consentd.v1 (Protos/consentd/v1/consentd.proto).
    @usableFromInline static let responseID: UInt64 = 1, responseCheck: UInt64 = 2, responseBatch: UInt64 = 3

    /// Writes the frame of `Response{id, check: answer}`; `explanation`, when given, is the
    /// encoded `Explanation` message written as field 10, and `message` (INVALID_SIGNAL's why)
    /// field 11. The frame's size is computed first and reserved once; false (nothing written)
    /// if the writer did not fill exactly that size.
    @inlinable @discardableResult
    public static func writeCheckFrame<S: WireSink>(id: UInt64, _ answer: CheckAnswer, explanation: [UInt8]? = nil, message: String? = nil, into sink: inout S) -> Bool {
        let policy = answer.policy
        let rule: EncodedRule? = answer.ruleIndex >= 0 ? policy.rules[Int(answer.ruleIndex)] : nil
        let recordSize = answer.record.map(recordBodySize) ?? 0
        var checkSize = WireWriter.varintFieldSize(1, answer.decision) + WireWriter.varintFieldSize(2, answer.reason)
            + policy.checkRevision.count + WireWriter.varintFieldSize(5, answer.consentSequence)
            + (answer.record == nil ? 0 : WireWriter.messageFieldSize(6, bodySize: recordSize))
            + WireWriter.varintFieldSize(7, answer.legalBasis)
        if let rule {
            checkSize += rule.ruleID.count + rule.location.count + (answer.withObligations ? rule.checkObligations.count : 0)
        }
        if let explanation { checkSize += WireWriter.messageFieldSize(10, bodySize: explanation.count) }
        if let message { checkSize += WireWriter.bytesFieldSize(11, message.utf8.count) }
        let responseSize = WireWriter.varintFieldSize(responseID, id) + WireWriter.messageFieldSize(responseCheck, bodySize: checkSize)

        return policy.bytes.withUnsafeBytes { encoded in sink.writeReserved(WireWriter.size(UInt64(responseSize)) + responseSize) { sink in
            WireWriter.varint(UInt64(responseSize), into: &sink)
            WireWriter.varintField(responseID, id, into: &sink)
            WireWriter.messageHeader(responseCheck, bodySize: checkSize, into: &sink)
            WireWriter.varintField(1, answer.decision, into: &sink)
            WireWriter.varintField(2, answer.reason, into: &sink)
            if let rule { WireWriter.slice(rule.ruleID, of: encoded, into: &sink) }            // 3 rule_id
            WireWriter.slice(policy.checkRevision, of: encoded, into: &sink)                   // 4 policy_revision
            WireWriter.varintField(5, answer.consentSequence, into: &sink)
            if let record = answer.record {                                                     // 6 consent_record
                WireWriter.messageHeader(6, bodySize: recordSize, into: &sink)
                writeRecordBody(record, into: &sink)
            }
            WireWriter.varintField(7, answer.legalBasis, into: &sink)
            if let rule {
                if answer.withObligations { WireWriter.slice(rule.checkObligations, of: encoded, into: &sink) }  // 8 obligations
                WireWriter.slice(rule.location, of: encoded, into: &sink)                                      // 9 rule_location
            }
            if let explanation {                                                                // 10 explanation
                WireWriter.messageHeader(10, bodySize: explanation.count, into: &sink)
                WireWriter.encoded(explanation, into: &sink)
            }
            if let message { WireWriter.stringField(11, message, into: &sink) }                // 11 message
        } }
    }

    /// `writeCheckFrame` into a new array (one allocation for answers without a long explanation);
    /// nil if the frame could not be written whole.
    @inlinable
    public static func checkFrame(id: UInt64, _ answer: CheckAnswer, explanation: [UInt8]? = nil, message: String? = nil) -> [UInt8]? {
        var frame: [UInt8] = []
        frame.reserveCapacity(256 + (explanation?.count ?? 0) + (message?.utf8.count ?? 0))
        return writeCheckFrame(id: id, answer, explanation: explanation, message: message, into: &frame) ? frame : nil
    }

    /// The body size of a `ConsentRecord` as an answer carries it.
    @inlinable
    static func recordBodySize(_ record: AnswerRecord) -> Int {
        WireWriter.bytesFieldSize(2, record.purpose.utf8.count) + WireWriter.bytesFieldSize(3, record.dataCategory.utf8.count)
            + WireWriter.varintFieldSize(4, record.choice)
            + WireWriter.timestampFieldSize(5, record.recordedAt)
            + (record.expiresAt.map { WireWriter.timestampFieldSize(6, $0) } ?? 0)
            + WireWriter.varintFieldSize(7, record.legalBasis)
            + WireWriter.bytesFieldSize(8, record.source.utf8.count)
            + (record.noticeVersion.map { WireWriter.presentVarintFieldSize(9, UInt64($0)) } ?? 0)
            + WireWriter.varintFieldSize(12, record.sequence)
    }

    @inlinable
    static func writeRecordBody<S: WireSink>(_ record: AnswerRecord, into sink: inout S) {
        WireWriter.stringField(2, record.purpose, into: &sink)
        WireWriter.stringField(3, record.dataCategory, into: &sink)
        WireWriter.varintField(4, record.choice, into: &sink)
        WireWriter.timestampField(5, record.recordedAt, into: &sink)
        if let expires = record.expiresAt { WireWriter.timestampField(6, expires, into: &sink) }
        WireWriter.varintField(7, record.legalBasis, into: &sink)
        WireWriter.stringField(8, record.source, into: &sink)
        if let notice = record.noticeVersion { WireWriter.presentVarintField(9, UInt64(notice), into: &sink) }
        WireWriter.varintField(12, record.sequence, into: &sink)
    }

    /// Writes the frame of `Response{id, check_batch: {results, policy_revision, consent_sequence, message}}`
    /// for `count` results, the i-th given by `result(i)` (asked twice: once to size, once to write);
    /// false (nothing written) if the writer did not fill exactly the computed size.
    @inlinable @discardableResult
    public static func writeBatchFrame<S: WireSink>(
        id: UInt64, policy: EncodedPolicy, consentSequence: UInt64, count: Int, message: String? = nil, result: (Int) -> BatchResult, into sink: inout S
    ) -> Bool {
        var resultsSize = 0
        for index in 0..<count { resultsSize += WireWriter.messageFieldSize(1, bodySize: resultBodySize(result(index), policy)) }
        let batchSize = resultsSize + policy.batchRevision.count + WireWriter.varintFieldSize(3, consentSequence)
            + (message.map { WireWriter.bytesFieldSize(4, $0.utf8.count) } ?? 0)
        let responseSize = WireWriter.varintFieldSize(responseID, id) + WireWriter.messageFieldSize(responseBatch, bodySize: batchSize)
        return policy.bytes.withUnsafeBytes { encoded in sink.writeReserved(WireWriter.size(UInt64(responseSize)) + responseSize) { sink in
            WireWriter.varint(UInt64(responseSize), into: &sink)
            WireWriter.varintField(responseID, id, into: &sink)
            WireWriter.messageHeader(responseBatch, bodySize: batchSize, into: &sink)
            for index in 0..<count {
                let item = result(index)
                WireWriter.messageHeader(1, bodySize: resultBodySize(item, policy), into: &sink)
                WireWriter.varintField(1, item.decision, into: &sink)
                WireWriter.varintField(2, item.reason, into: &sink)
                let rule: EncodedRule? = item.ruleIndex >= 0 ? policy.rules[Int(item.ruleIndex)] : nil
                if let rule { WireWriter.slice(rule.ruleID, of: encoded, into: &sink) }                                 // 3 rule_id
                WireWriter.varintField(4, item.recordSequence, into: &sink)
                if let rule, item.withObligations { WireWriter.slice(rule.resultObligations, of: encoded, into: &sink) } // 5 obligations
                WireWriter.varintField(6, item.legalBasis, into: &sink)
            }
            WireWriter.slice(policy.batchRevision, of: encoded, into: &sink)                                           // 2 policy_revision
            WireWriter.varintField(3, consentSequence, into: &sink)
            if let message { WireWriter.stringField(4, message, into: &sink) }                                         // 4 message
        } }
    }

    @inlinable
    static func resultBodySize(_ item: BatchResult, _ policy: EncodedPolicy) -> Int {
        var size = WireWriter.varintFieldSize(1, item.decision) + WireWriter.varintFieldSize(2, item.reason)
            + WireWriter.varintFieldSize(4, item.recordSequence) + WireWriter.varintFieldSize(6, item.legalBasis)
        if item.ruleIndex >= 0 {
            let rule = policy.rules[Int(item.ruleIndex)]
            size += rule.ruleID.count + (item.withObligations ? rule.resultObligations.count : 0)
        }
        return size
    }
}
