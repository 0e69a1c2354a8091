import ConsentModel
import ConsentStore
import ConsentWire
import NIOCore
import PolicyEngine

/// A `Request` holding a plain `CheckBatchRequest`, read straight from the wire: the items as
/// byte ranges, in order. Nil for anything the general path must handle.
struct ParsedBatch {
    var id: UInt64 = 0
    var context = ParsedCheck()
    var items: [(subject: Range<Int>, purpose: Range<Int>, data: Range<Int>)] = []

    /// Reads the batch; false (decline) for anything unusual, or more than `maximumItems` items
    /// — counted before another is added, so an oversized batch never grows `items`.
    mutating func parse(_ bytes: UnsafeRawBufferPointer, maximumItems: Int) -> Bool {
        // Reused across frames: everything starts over (found by fuzz-frames: a batch without an
        // id was answered with the id of the batch before it).
        id = 0
        items.removeAll(keepingCapacity: true)
        context = ParsedCheck()
        var reader = FastWireReader(bytes: bytes, start: 0, end: bytes.count)
        var sawBatch = false
        while reader.hasMore {
            guard let (field, wire) = reader.tag() else { return false }
            switch (field, wire) {
            case (1, 0):
                guard let value = reader.varint() else { return false }
                id = value
            case (3, 2):
                guard !sawBatch, let range = reader.lengthDelimited() else { return false }
                sawBatch = true
                var batch = FastWireReader(bytes: bytes, start: range.lowerBound, end: range.upperBound)
                var sawContext = false
                while batch.hasMore {
                    guard let (f, w) = batch.tag() else { return false }
                    switch (f, w) {
                    case (1, 2):
                        guard items.count < maximumItems, let itemRange = batch.lengthDelimited() else { return false }
                        var item = FastWireReader(bytes: bytes, start: itemRange.lowerBound, end: itemRange.upperBound)
                        var subject = 0..<0, purpose = 0..<0, data = 0..<0
                        while item.hasMore {
                            guard let (g, x) = item.tag(), x == 2, let r = item.asciiString() else { return false }
                            switch g {
                            case 1: subject = r
                            case 2: purpose = r
                            case 3: data = r
                            default: return false
                            }
                        }
                        items.append((subject, purpose, data))
                    case (2, 2):
                        guard !sawContext, let contextRange = batch.lengthDelimited() else { return false }
                        sawContext = true
                        guard context.parseContext(bytes, contextRange) else { return false }
                    default:
                        return false
                    }
                }
            default:
                return false
            }
        }
        return sawBatch
    }
}

extension CheckResponseParts {
    /// Writes the frame of `Response{id, check_batch: {results, policy_revision, consent_sequence}}`.
    func writeBatchFrame(id: UInt64, decisions: [Decision], sequence: UInt64, into buffer: inout ByteBuffer) {
        func resultSize(_ decision: Decision) -> Int {
            var size = WireWriter.varintFieldSize(1, UInt64(Consentd_V1_Decision(decision.effect).rawValue))
                + WireWriter.varintFieldSize(2, UInt64(decision.reason.rawValue))
            if decision.ruleIndex >= 0 {
                size += batchRuleFields(decision).count
            }
            size += WireWriter.varintFieldSize(4, decision.record?.sequence ?? 0)
            size += WireWriter.varintFieldSize(6, decision.legalBasis.map { UInt64(Consentd_V1_LegalBasis($0).rawValue) } ?? 0)
            return size
        }
        var resultsSize = 0
        for decision in decisions { resultsSize += WireWriter.bytesFieldSize(1, resultSize(decision)) }
        let revisionField = batchRevision
        let batchSize = resultsSize + revisionField.count + WireWriter.varintFieldSize(3, sequence)
        let responseSize = WireWriter.varintFieldSize(1, id) + WireWriter.bytesFieldSize(3, batchSize)
        WireWriter.varint(UInt64(responseSize), into: &buffer)
        WireWriter.varintField(1, id, into: &buffer)
        WireWriter.varint(3 << 3 | 2, into: &buffer)
        WireWriter.varint(UInt64(batchSize), into: &buffer)
        for decision in decisions {
            WireWriter.varint(1 << 3 | 2, into: &buffer)
            WireWriter.varint(UInt64(resultSize(decision)), into: &buffer)
            WireWriter.varintField(1, UInt64(Consentd_V1_Decision(decision.effect).rawValue), into: &buffer)
            WireWriter.varintField(2, UInt64(decision.reason.rawValue), into: &buffer)
            let ruleFields = decision.ruleIndex >= 0 ? batchRuleFields(decision) : []
            let split = ruleFields.isEmpty ? 0 : batchRuleIDLength[Int(decision.ruleIndex)]
            buffer.writeBytes(ruleFields[..<split])  // field 3
            WireWriter.varintField(4, decision.record?.sequence ?? 0, into: &buffer)
            buffer.writeBytes(ruleFields[split...])  // field 5 (obligations)
            WireWriter.varintField(6, decision.legalBasis.map { UInt64(Consentd_V1_LegalBasis($0).rawValue) } ?? 0, into: &buffer)
        }
        buffer.writeBytes(revisionField)
        WireWriter.varintField(3, sequence, into: &buffer)
    }

    @inline(__always)
    func batchRuleFields(_ decision: Decision) -> [UInt8] {
        decision.isAllowed ? batchAllowRuleFields[Int(decision.ruleIndex)] : batchDenyRuleFields[Int(decision.ruleIndex)]
    }
}
