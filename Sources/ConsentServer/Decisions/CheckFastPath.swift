import ConsentModel
import ConsentStore
import ConsentWire
import NIOCore
import PolicyEngine

/// The allocation-free path for the most common request, a plain `Check`: the frame is read
/// straight from the wire format (no message objects, no strings), keys are looked up by their
/// bytes, and the response is written straight into the outgoing buffer.
///
/// Anything unusual — another method, `explain`, an unknown field, a repeated submessage,
/// non-ASCII subject bytes, a key or jurisdiction that is not listed exactly — returns nil from
/// `parse`/`resolve`, and the general path (SwiftProtobuf and `RequestProcessor`) answers
/// instead, so every error message and normalisation lives in one place. Tests check that both
/// paths give byte-identical answers.
struct ParsedCheck {
    var id: UInt64 = 0
    var subject: Range<Int> = 0..<0
    var purpose: Range<Int> = 0..<0
    var data: Range<Int> = 0..<0
    var jurisdiction: Range<Int>?
    var channel: Range<Int>?
    var gpc = false
    var uspOptOut = false
    var at: Timestamp?

    /// Reads a `Request` holding a plain `CheckRequest`; nil for anything else.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> ParsedCheck? {
        var parsed = ParsedCheck()
        var reader = FastWireReader(bytes: bytes, start: 0, end: bytes.count)
        var sawCheck = false
        while reader.hasMore {
            guard let (field, wire) = reader.tag() else { return nil }
            switch (field, wire) {
            case (1, 0):
                guard let id = reader.varint() else { return nil }
                parsed.id = id
            case (2, 2):
                guard !sawCheck, let range = reader.lengthDelimited(), parsed.parseCheck(bytes, range) else { return nil }
                sawCheck = true
            default:
                return nil
            }
        }
        return sawCheck ? parsed : nil
    }

    private mutating func parseCheck(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var reader = FastWireReader(bytes: bytes, start: range.lowerBound, end: range.upperBound)
        var sawContext = false
        while reader.hasMore {
            guard let (field, wire) = reader.tag() else { return false }
            switch (field, wire) {
            case (1, 2): guard let r = reader.asciiString() else { return false }; subject = r
            case (2, 2): guard let r = reader.asciiString() else { return false }; purpose = r
            case (3, 2): guard let r = reader.asciiString() else { return false }; data = r
            case (4, 2):
                guard !sawContext, let r = reader.lengthDelimited(), parseContext(bytes, r) else { return false }
                sawContext = true
            case (5, 0):
                guard let explain = reader.varint(), explain == 0 else { return false }
            default:
                return false
            }
        }
        return true
    }

    /// Reads a `Context` message at `range` into this value's context fields.
    mutating func parseContext(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var reader = FastWireReader(bytes: bytes, start: range.lowerBound, end: range.upperBound)
        var sawAt = false
        while reader.hasMore {
            guard let (field, wire) = reader.tag() else { return false }
            switch (field, wire) {
            case (1, 2): guard let r = reader.asciiString() else { return false }; jurisdiction = r
            case (2, 0): guard let v = reader.varint() else { return false }; gpc = v != 0
            case (3, 2):
                guard !sawAt, let r = reader.lengthDelimited() else { return false }
                sawAt = true
                var inner = FastWireReader(bytes: bytes, start: r.lowerBound, end: r.upperBound)
                var seconds: Int64 = 0
                var nanos: Int64 = 0
                while inner.hasMore {
                    guard let (f, w) = inner.tag(), w == 0, let v = inner.varint() else { return false }
                    if f == 1 { seconds = Int64(bitPattern: v) } else if f == 2 { nanos = Int64(Int32(truncatingIfNeeded: v)) } else { return false }
                }
                // Out of range (or bad nanos): the general path answers with the error.
                guard let valid = Timestamp(seconds: seconds, nanos: Int32(nanos)) else { return false }
                at = valid
            case (4, 0): guard let v = reader.varint() else { return false }; uspOptOut = v != 0
            case (5, 2): guard let r = reader.asciiString() else { return false }; channel = r
            default: return false
            }
        }
        return true
    }
}

/// Writes protobuf fields into a ByteBuffer.
enum WireWriter {
    @inline(__always)
    static func varint(_ value: UInt64, into buffer: inout ByteBuffer) {
        var value = value
        while value >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        buffer.writeInteger(UInt8(value))
    }

    @inline(__always)
    static func size(_ value: UInt64) -> Int { FrameCodec.varintSize(value) }

    /// Tag and varint, skipped when zero (proto3 default).
    @inline(__always)
    static func varintField(_ field: UInt64, _ value: UInt64, into buffer: inout ByteBuffer) {
        guard value != 0 else { return }
        varint(field << 3, into: &buffer)
        varint(value, into: &buffer)
    }

    @inline(__always)
    static func varintFieldSize(_ field: UInt64, _ value: UInt64) -> Int {
        value == 0 ? 0 : size(field << 3) + size(value)
    }

    @inline(__always)
    static func bytesField(_ field: UInt64, _ bytes: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        guard bytes.count > 0 else { return }
        varint(field << 3 | 2, into: &buffer)
        varint(UInt64(bytes.count), into: &buffer)
        buffer.writeBytes(bytes)
    }

    @inline(__always)
    static func bytesFieldSize(_ field: UInt64, _ count: Int) -> Int {
        count == 0 ? 0 : size(field << 3 | 2) + size(UInt64(count)) + count
    }

    static func stringField(_ field: UInt64, _ text: String, into buffer: inout ByteBuffer) {
        var text = text
        text.withUTF8 { bytesField(field, UnsafeRawBufferPointer($0), into: &buffer) }
    }

    /// The size of a `Timestamp` message's body (its fields, without tag and length).
    static func timestampBodySize(_ timestamp: Timestamp) -> Int {
        let (seconds, nanos) = timestamp.secondsAndNanos
        return varintFieldSize(1, UInt64(bitPattern: seconds)) + varintFieldSize(2, UInt64(UInt32(bitPattern: nanos)))
    }

    /// The size of a present `Timestamp` field: tag, length and body. A present message field is
    /// written even when its body is empty (the Unix epoch), as SwiftProtobuf writes it; the
    /// size and the writer share this one rule (they once disagreed, and the frame broke).
    static func timestampFieldSize(_ field: UInt64, _ timestamp: Timestamp) -> Int {
        let body = timestampBodySize(timestamp)
        return size(field << 3 | 2) + size(UInt64(body)) + body
    }

    static func timestampField(_ field: UInt64, _ timestamp: Timestamp, into buffer: inout ByteBuffer) {
        let (seconds, nanos) = timestamp.secondsAndNanos
        varint(field << 3 | 2, into: &buffer)
        varint(UInt64(timestampBodySize(timestamp)), into: &buffer)
        varintField(1, UInt64(bitPattern: seconds), into: &buffer)
        varintField(2, UInt64(UInt32(bitPattern: nanos)), into: &buffer)
    }
}

/// Pre-encoded parts of check responses for one policy set: the revision field and, per rule,
/// the rule id, location and obligations fields.
final class CheckResponseParts {
    let set: PolicySet
    let revision: [UInt8]
    /// Per rule: fields 3 (rule_id) and 9 (rule_location) for a deny; plus 8 (obligations) for an allow.
    let denyRuleFields: [[UInt8]]
    let allowRuleFields: [[UInt8]]
    /// For CheckResult: field 3 (rule_id), plus 5 (obligations) for an allow; and field 2 of the batch.
    let batchDenyRuleFields: [[UInt8]]
    let batchAllowRuleFields: [[UInt8]]
    let batchRuleIDLength: [Int]
    let batchRevision: [UInt8]

    init(set: PolicySet) {
        self.set = set
        func field(_ number: UInt64, _ text: String) -> [UInt8] {
            guard !text.isEmpty else { return [] }
            var out: [UInt8] = []
            FrameCodec.appendVarint(number << 3 | 2, to: &out)
            FrameCodec.appendVarint(UInt64(text.utf8.count), to: &out)
            out += Array(text.utf8)
            return out
        }
        revision = field(4, set.revision)
        denyRuleFields = set.rules.map { field(3, $0.id) + field(9, $0.location.description) }
        allowRuleFields = set.rules.map { rule in
            field(3, rule.id) + rule.obligations.flatMap { field(8, $0) } + field(9, rule.location.description)
        }
        batchDenyRuleFields = set.rules.map { field(3, $0.id) }
        batchAllowRuleFields = set.rules.map { rule in field(3, rule.id) + rule.obligations.flatMap { field(5, $0) } }
        batchRuleIDLength = set.rules.map { field(3, $0.id).count }
        batchRevision = field(2, set.revision)
    }

    /// Appends the frame of `Response{id, check: …}` for `decision` to `buffer`.
    func writeFrame(id: UInt64, decision: Decision, sequence: UInt64, into buffer: inout ByteBuffer) {
        let vocabulary = set.vocabulary
        var ruleFields: [UInt8] = []
        if decision.ruleIndex >= 0 {
            ruleFields = decision.isAllowed ? allowRuleFields[Int(decision.ruleIndex)] : denyRuleFields[Int(decision.ruleIndex)]
        }
        // The relied-on record (ConsentRecord, field 6).
        var recordSize = 0
        var purpose = "", data = "", source = ""
        if let record = decision.record {
            purpose = vocabulary.purposes.name(record.purpose) ?? ""
            data = record.dataCategory == CompactRecord.allData ? "" : vocabulary.dataCategories.name(record.dataCategory) ?? ""
            source = vocabulary.sources.name(record.source) ?? ""
            recordSize = WireWriter.bytesFieldSize(2, purpose.utf8.count) + WireWriter.bytesFieldSize(3, data.utf8.count)
                + WireWriter.varintFieldSize(4, UInt64(Consentd_V1_Choice(record.choice).rawValue))
                + WireWriter.timestampFieldSize(5, record.recordedAt)
                + (record.expiresAt == .distantFuture ? 0 : WireWriter.timestampFieldSize(6, record.expiresAt))
                + WireWriter.varintFieldSize(7, UInt64(Consentd_V1_LegalBasis(record.legalBasis).rawValue))
                + WireWriter.bytesFieldSize(8, source.utf8.count)
                + (record.noticeVersion == CompactRecord.noNotice ? 0 : WireWriter.size(9 << 3) + WireWriter.size(UInt64(record.noticeVersion)))
                + WireWriter.varintFieldSize(12, record.sequence)
        }
        let decisionValue = UInt64(Consentd_V1_Decision(decision.effect).rawValue)
        let reasonValue = UInt64(decision.reason.rawValue)
        let basisValue = decision.legalBasis.map { UInt64(Consentd_V1_LegalBasis($0).rawValue) } ?? 0
        let checkSize = WireWriter.varintFieldSize(1, decisionValue) + WireWriter.varintFieldSize(2, reasonValue)
            + ruleFields.count + revision.count + WireWriter.varintFieldSize(5, sequence)
            + (decision.record == nil ? 0 : WireWriter.bytesFieldSize(6, recordSize))
            + WireWriter.varintFieldSize(7, basisValue)
        let responseSize = WireWriter.varintFieldSize(1, id) + WireWriter.bytesFieldSize(2, checkSize)
        WireWriter.varint(UInt64(responseSize), into: &buffer)
        WireWriter.varintField(1, id, into: &buffer)
        WireWriter.varint(2 << 3 | 2, into: &buffer)
        WireWriter.varint(UInt64(checkSize), into: &buffer)
        // Fields in number order, as SwiftProtobuf writes them.
        WireWriter.varintField(1, decisionValue, into: &buffer)
        WireWriter.varintField(2, reasonValue, into: &buffer)
        let split = ruleFields.isEmpty ? 0 : ruleFieldsSplit(ruleFields)
        buffer.writeBytes(ruleFields[..<split])  // field 3
        buffer.writeBytes(revision)              // field 4
        WireWriter.varintField(5, sequence, into: &buffer)
        if let record = decision.record {
            WireWriter.varint(6 << 3 | 2, into: &buffer)
            WireWriter.varint(UInt64(recordSize), into: &buffer)
            WireWriter.stringField(2, purpose, into: &buffer)
            WireWriter.stringField(3, data, into: &buffer)
            WireWriter.varintField(4, UInt64(Consentd_V1_Choice(record.choice).rawValue), into: &buffer)
            WireWriter.timestampField(5, record.recordedAt, into: &buffer)
            if record.expiresAt != .distantFuture { WireWriter.timestampField(6, record.expiresAt, into: &buffer) }
            WireWriter.varintField(7, UInt64(Consentd_V1_LegalBasis(record.legalBasis).rawValue), into: &buffer)
            WireWriter.stringField(8, source, into: &buffer)
            if record.noticeVersion != CompactRecord.noNotice {
                WireWriter.varint(9 << 3, into: &buffer)
                WireWriter.varint(UInt64(record.noticeVersion), into: &buffer)
            }
            WireWriter.varintField(12, record.sequence, into: &buffer)
        }
        WireWriter.varintField(7, basisValue, into: &buffer)
        buffer.writeBytes(ruleFields[split...])  // fields 8 and 9
    }

    /// Where field 3 (rule_id) ends in a pre-encoded rule-fields blob.
    private func ruleFieldsSplit(_ fields: [UInt8]) -> Int {
        // Field 3 comes first: tag (1 byte) + length varint + bytes.
        var position = 1
        var length = 0
        var shift = 0
        while true {
            let byte = fields[position]
            position += 1
            length |= Int(byte & 0x7F) << shift
            if byte & 0x80 == 0 { break }
            shift += 7
        }
        return position + length
    }
}
