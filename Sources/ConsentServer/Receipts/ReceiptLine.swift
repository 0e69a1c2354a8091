import ConsentModel
import PolicyEngine

/// The parts of a receipt that depend only on the policy set, JSON-encoded once per set.
final class ReceiptParts {
    let set: PolicySet
    /// `"revision":"…"`
    let revision: [UInt8]
    /// `"rule":"…"` per rule index.
    let rules: [[UInt8]]

    init(set: PolicySet) {
        self.set = set
        var revision: [UInt8] = []
        ReceiptJSON.appendField("revision", string: set.revision, to: &revision)
        self.revision = revision
        rules = set.rules.map { rule in
            var bytes: [UInt8] = []
            ReceiptJSON.appendField("rule", string: rule.id, to: &bytes)
            return bytes
        }
    }
}

/// One decision as a receipt's fields, borrowed from the request for the time of encoding.
struct ReceiptInput {
    var subject: UnsafeRawBufferPointer
    var purpose: UnsafeRawBufferPointer
    var dataCategory: UnsafeRawBufferPointer
    var jurisdiction: UnsafeRawBufferPointer?
    var channel: UnsafeRawBufferPointer?
    var gpc: Bool
    var uspOptOut: Bool
    /// The instant the request asked to decide at, if it gave one.
    var requestedAt: Timestamp?
    /// When the decision was made.
    var time: Timestamp
    var decision: Decision
    /// The consent-store sequence the decision read.
    var sequence: UInt64
    /// What kind of request: "check", "batch", "list_uses".
    var kind: StaticString
}

/// Receipts of one connection, encoded as JSON lines on the event loop and handed to the shared
/// queue once per frame (one lock per frame, not per receipt).
struct ConnectionReceipts {
    let queue: ReceiptQueue
    private let idPrefix: [UInt8]
    private var counter: UInt64 = 0
    private var sampleCredit: Double = 0
    private var parts: ReceiptParts?
    private var clock = TimeFormatter()
    var lines = ReceiptLines()

    init(queue: ReceiptQueue, connection: UInt64) {
        self.queue = queue
        idPrefix = Array("\(queue.instance)-\(connection)-".utf8)
    }

    /// Whether the next decision gets a receipt (deterministic sampling at the configured rate).
    @inline(__always)
    mutating func sample() -> Bool {
        let rate = queue.sampleRate
        if rate >= 1 { return true }
        sampleCredit += rate
        if sampleCredit >= 1 {
            sampleCredit -= 1
            return true
        }
        return false
    }

    /// Appends one receipt line.
    mutating func append(_ input: ReceiptInput, set: PolicySet) {
        if parts?.set !== set { parts = ReceiptParts(set: set) }
        counter += 1
        var out = lines.bytes
        lines.bytes = []
        out.append(contentsOf: #"{"id":""#.utf8)
        out.append(contentsOf: idPrefix)
        ReceiptJSON.appendDecimal(counter, to: &out)
        out.append(contentsOf: #"","time":""#.utf8)
        clock.append(input.time, to: &out)
        out.append(UInt8(ascii: "\""))
        switch queue.subjectMode {
        case .raw:
            out.append(contentsOf: #","subject":"#.utf8)
            ReceiptJSON.appendString(input.subject, to: &out)
        case .hash:
            out.append(contentsOf: #","subject_hash":""#.utf8)
            out.append(contentsOf: queue.subjectHash(input.subject).utf8)
            out.append(UInt8(ascii: "\""))
        case .omit:
            break
        }
        out.append(contentsOf: #","purpose":"#.utf8)
        ReceiptJSON.appendString(input.purpose, to: &out)
        out.append(contentsOf: #","data_category":"#.utf8)
        ReceiptJSON.appendString(input.dataCategory, to: &out)
        out.append(contentsOf: #","context":{"#.utf8)
        var first = true
        func separator(_ out: inout [UInt8]) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
        }
        if let jurisdiction = input.jurisdiction, jurisdiction.count > 0 {
            separator(&out)
            out.append(contentsOf: #""jurisdiction":"#.utf8)
            ReceiptJSON.appendString(jurisdiction, to: &out)
        }
        if input.gpc {
            separator(&out)
            out.append(contentsOf: #""gpc":true"#.utf8)
        }
        if input.uspOptOut {
            separator(&out)
            out.append(contentsOf: #""usp_opt_out":true"#.utf8)
        }
        if let channel = input.channel, channel.count > 0 {
            separator(&out)
            out.append(contentsOf: #""channel":"#.utf8)
            ReceiptJSON.appendString(channel, to: &out)
        }
        if let at = input.requestedAt {
            separator(&out)
            out.append(contentsOf: #""at":""#.utf8)
            clock.append(at, to: &out)
            out.append(UInt8(ascii: "\""))
        }
        out.append(contentsOf: #"},"decision":""#.utf8)
        out.append(contentsOf: input.decision.isAllowed ? "allow".utf8 : "deny".utf8)
        out.append(contentsOf: #"","reason":""#.utf8)
        out.append(contentsOf: input.decision.reason.description.utf8)
        out.append(UInt8(ascii: "\""))
        let parts = self.parts!
        let rule = Int(input.decision.ruleIndex)
        if rule >= 0 && rule < parts.rules.count {
            out.append(UInt8(ascii: ","))
            out.append(contentsOf: parts.rules[rule])
        }
        out.append(contentsOf: #","record":"#.utf8)
        ReceiptJSON.appendDecimal(input.decision.record?.sequence ?? 0, to: &out)
        out.append(UInt8(ascii: ","))
        out.append(contentsOf: parts.revision)
        out.append(contentsOf: #","sequence":"#.utf8)
        ReceiptJSON.appendDecimal(input.sequence, to: &out)
        out.append(contentsOf: #","kind":""#.utf8)
        input.kind.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: "\"}\n".utf8)
        lines.bytes = out
        lines.count += 1
        lines.ends.append(out.count)
    }

    /// Hands the lines of this frame to the queue.
    mutating func flush() {
        guard lines.count > 0 else { return }
        queue.enqueue(&lines)
    }
}

/// Encoded receipt lines and where each ends.
struct ReceiptLines {
    var bytes: [UInt8] = []
    var ends: [Int] = []
    var count = 0

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        count = 0
    }
}

/// JSON encoding helpers that write straight into byte arrays.
enum ReceiptJSON {
    static func appendField(_ name: String, string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: name.utf8)
        out.append(contentsOf: "\":".utf8)
        var value = string
        value.withUTF8 { appendString(UnsafeRawBufferPointer($0), to: &out) }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// A quoted, escaped JSON string. Invalid UTF-8 is replaced (U+FFFD), never copied raw.
    static func appendString(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var ascii = true
        for byte in bytes where byte >= 0x80 {
            ascii = false
            break
        }
        if ascii {
            appendEscaped(bytes, to: &out)
        } else {
            var text = String(decoding: bytes, as: UTF8.self)
            text.withUTF8 { appendEscaped(UnsafeRawBufferPointer($0), to: &out) }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func appendEscaped(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 15)])
            default: out.append(byte)
            }
        }
    }

    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        if value < 10 {
            out.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        var digits: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0) // 40 bytes of scratch
        withUnsafeMutableBytes(of: &digits) { scratch in
            var n = value
            var i = scratch.count
            while n > 0 {
                i -= 1
                scratch[i] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            }
            out.append(contentsOf: scratch[i...])
        }
    }
}

/// RFC 3339 UTC with microseconds, allocation-free, caching the date and time of the last second.
struct TimeFormatter {
    private var cachedSecond = Int64.min
    private var prefix: [UInt8] = []

    mutating func append(_ instant: Timestamp, to out: inout [UInt8]) {
        let micros = instant.microseconds
        var second = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 {
            fraction += 1_000_000
            second -= 1
        }
        if second != cachedSecond {
            cachedSecond = second
            var text = Timestamp(microseconds: second * 1_000_000).rfc3339
            // "YYYY-MM-DDTHH:MM:SSZ" (no fraction for whole seconds): keep all but the Z.
            if text.hasSuffix("Z") { text.removeLast() }
            if let dot = text.firstIndex(of: ".") { text = String(text[..<dot]) }
            prefix = Array(text.utf8)
        }
        out.append(contentsOf: prefix)
        out.append(UInt8(ascii: "."))
        var divisor: Int64 = 100_000
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8((fraction / divisor) % 10))
            divisor /= 10
        }
        out.append(UInt8(ascii: "Z"))
    }
}
