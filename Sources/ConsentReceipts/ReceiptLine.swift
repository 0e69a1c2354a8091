import ConsentModel
import Crypto
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

/// Receipts of one connection, encoded as JSON lines on the event loop and handed to the shared
/// queue once per frame (one lock per frame, not per receipt).
///
/// Encoding writes through a raw cursor into space reserved once per receipt (an upper bound:
/// every string byte escaped), so the hot path does no per-byte capacity checks and no
/// allocation; strings that need no escaping are copied whole.
package struct ConnectionReceipts {
    let queue: ReceiptQueue
    private let idPrefix: [UInt8]
    private var counter: UInt64 = 0
    private var sampleCredit: Double = 0
    private var parts: ReceiptParts?
    private var clock = TimeFormatter()
    /// The last subject hashed and its hash: a ListUses answer or a batch decides one subject
    /// many times, and the keyed hash is the costliest part of a receipt.
    private var hashedSubject: [UInt8] = []
    private var hashedSubjectText = ""
    /// The number of this request's signals line (`startRequest` resets it), 0 before it is written.
    private var signalsLine: UInt64 = 0
    package let lines = ReceiptLines()

    package init(queue: ReceiptQueue, connection: UInt64) {
        self.queue = queue
        idPrefix = Array("\(queue.instance)-\(connection)-".utf8)
    }

    /// Whether the next decision gets a receipt (deterministic sampling at the configured rate).
    @inline(__always)
    package mutating func sample() -> Bool {
        let rate = queue.sampleRate
        if rate >= 1 { return true }
        sampleCredit += rate
        if sampleCredit >= 1 {
            sampleCredit -= 1
            return true
        }
        return false
    }

    private mutating func subjectHash(_ subject: UnsafeRawBufferPointer) -> String {
        if hashedSubjectText.isEmpty || !hashedSubject.elementsEqual(subject) {
            hashedSubject.removeAll(keepingCapacity: true)
            hashedSubject.append(contentsOf: subject)
            hashedSubjectText = queue.subjectHash(subject)
        }
        return hashedSubjectText
    }

    /// A new request begins: its decisions share one context, whose signals go into one signals
    /// line, written before the first of its receipts.
    package mutating func startRequest() {
        signalsLine = 0
    }

    /// Appends the receipt line of one decision (after its request's signals line, if it has
    /// signals and that line is not written yet).
    package mutating func append(_ event: DecisionEvent, set: PolicySet) {
        let time = event.decidedAt ?? .now()
        switch event.asked {
        case let .bytes(fields):
            writeSignalsLineIfNeeded(fields, event.signals)
            encodeCapping(fields, of: event, at: time, set: set)
        case let .strings(subject, purpose, dataCategory, context):
            let optional = [context.jurisdiction, context.channel, context.tcString, context.gppString, context.usPrivacy].map { $0.map { Array($0.utf8) } }
            AskedFields.holding([Array(subject.utf8), Array(purpose.utf8), Array(dataCategory.utf8)], optional) {
                writeSignalsLineIfNeeded($0, event.signals)
                encodeCapping($0, of: event, at: time, set: set)
            }
        }
    }

    /// Whether a decision's request carries signals (strings, sections or a vendor).
    private static func hasSignals(_ fields: AskedFields, _ signals: EventSignals) -> Bool {
        fields.hasSignalStrings || signals != EventSignals()
    }

    /// The request's signals, once: `{"signals":{"id":"…s<n>", …}}`. The strings as asked (each
    /// capped at the request limit: a longer one is malformed, and so is its marker) when subjects
    /// are raw, otherwise the SHA-256 of each as asked; the applicable GPP sections (ids below 64,
    /// and the count when it differs: repeats or ids no section has) and the vendor asked for.
    private mutating func writeSignalsLineIfNeeded(_ fields: AskedFields, _ signals: EventSignals) {
        guard signalsLine == 0, Self.hasSignals(fields, signals) else { return }
        signalsLine = counter &+ 1
        let raw = queue.subjectMode == .raw
        var strings: [(StaticString, [UInt8])] = []
        for (name, hashedName, value) in [(StaticString("tc_string"), StaticString("tc_string_sha256"), fields.tcString),
                                          ("gpp_string", "gpp_string_sha256", fields.gppString), ("us_privacy", "us_privacy_sha256", fields.usPrivacy)] {
            guard let value else { continue }
            strings.append(raw ? (name, AskedFields.capped(value, limit: AskedFields.maximumSignalBytes)) : (hashedName, Self.sha256Hex(value)))
        }
        lines.reserve(ReceiptSchema.signalOverheadBytes + idPrefix.count + strings.reduce(0) { $0 + 6 * $1.1.count })
        var out = RawCursor(lines.end)
        out.put(#"{"signals":{"id":""#)
        out.put(idPrefix)
        out.put(UInt8(ascii: "s"))
        out.putDecimal(signalsLine)
        out.put(UInt8(ascii: "\""))
        for (name, value) in strings {
            out.put(#",""#)
            out.put(name)
            out.put(#"":"#)
            value.withUnsafeBytes { out.putString($0) }
        }
        if signals.gppSectionCount > 0 {
            out.put(#","gpp_sid":["#)
            var first = true
            var mask = signals.gppSectionMask
            while mask != 0 {
                if !first { out.put(UInt8(ascii: ",")) }
                out.putDecimal(UInt64(mask.trailingZeroBitCount))
                mask &= mask - 1
                first = false
            }
            out.put(UInt8(ascii: "]"))
            if signals.gppSectionCount != signals.gppSectionMask.nonzeroBitCount {
                out.put(#","gpp_sid_count":"#)
                out.putDecimal(UInt64(signals.gppSectionCount))
            }
        }
        if signals.tcfVendorId != 0 {
            out.put(#","tcf_vendor_id":"#)
            out.putDecimal(UInt64(signals.tcfVendorId))
        }
        out.put("}}\n")
        lines.commit(until: out.position, isReceipt: false)
    }

    /// SHA-256 of `bytes`, as lowercase hex.
    static func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(bufferPointer: bytes)
        let digits = Array("0123456789abcdef".utf8)
        return hasher.finalize().flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }
    }

    /// `encode`, with every oversized field replaced by its marker (`AskedFields.capped`, the rare path).
    @inline(__always)
    private mutating func encodeCapping(_ fields: AskedFields, of event: DecisionEvent, at time: Timestamp, set: PolicySet) {
        if fields.hasOversizedField {
            fields.capped { encode($0, of: event, at: time, set: set) }
        } else {
            encode(fields, of: event, at: time, set: set)
        }
    }

    private mutating func encode(_ fields: AskedFields, of event: DecisionEvent, at time: Timestamp, set: PolicySet) {
        if parts?.set !== set { parts = ReceiptParts(set: set) }
        counter += 1
        let parts = self.parts.unsafelyUnwrapped
        let rule = Int(event.decision.ruleIndex)
        let ruleBytes: [UInt8]? = rule >= 0 && rule < parts.rules.count ? parts.rules[rule] : nil
        let hash = queue.subjectMode == .hash ? subjectHash(fields.subject) : ""
        let signalsReference = signalsLine != 0 && Self.hasSignals(fields, event.signals)
        var bound = 400 + 2 * idPrefix.count + parts.revision.count + (ruleBytes?.count ?? 0) + hash.utf8.count
        bound += 6 * (fields.subject.count + fields.purpose.count + fields.dataCategory.count + (fields.jurisdiction?.count ?? 0) + (fields.channel?.count ?? 0))
        lines.reserve(bound)
        var out = RawCursor(lines.end)
        out.put(#"{"id":""#)
        out.put(idPrefix)
        out.putDecimal(counter)
        out.put(#"","time":""#)
        clock.write(time, to: &out)
        out.put(UInt8(ascii: "\""))
        switch queue.subjectMode {
        case .raw:
            out.put(#","subject":"#)
            out.putString(fields.subject)
        case .hash:
            out.put(#","subject_hash":""#)
            var text = hash
            text.withUTF8 { out.put(UnsafeRawBufferPointer($0)) }
            out.put(UInt8(ascii: "\""))
        case .omit:
            break
        }
        out.put(#","purpose":"#)
        out.putString(fields.purpose)
        out.put(#","data_category":"#)
        out.putString(fields.dataCategory)
        out.put(#","context":{"#)
        var separator = false
        if let jurisdiction = fields.jurisdiction, jurisdiction.count > 0 {
            out.put(#""jurisdiction":"#)
            out.putString(jurisdiction)
            separator = true
        }
        if event.gpc {
            if separator { out.put(UInt8(ascii: ",")) }
            out.put(#""gpc":true"#)
            separator = true
        }
        if event.uspOptOut {
            if separator { out.put(UInt8(ascii: ",")) }
            out.put(#""usp_opt_out":true"#)
            separator = true
        }
        if let channel = fields.channel, channel.count > 0 {
            if separator { out.put(UInt8(ascii: ",")) }
            out.put(#""channel":"#)
            out.putString(channel)
            separator = true
        }
        if let at = event.requestedAt {
            if separator { out.put(UInt8(ascii: ",")) }
            out.put(#""at":""#)
            clock.write(at, to: &out)
            out.put(UInt8(ascii: "\""))
            separator = true
        }
        if signalsReference {
            if separator { out.put(UInt8(ascii: ",")) }
            out.put(#""signals":""#)
            out.put(idPrefix)
            out.put(UInt8(ascii: "s"))
            out.putDecimal(signalsLine)
            out.put(UInt8(ascii: "\""))
        }
        out.put(event.decision.isAllowed ? ReceiptSchema.decisionFields.allow : ReceiptSchema.decisionFields.deny)
        out.put(event.decision.reason.name)
        out.put(UInt8(ascii: "\""))
        if let ruleBytes {
            out.put(UInt8(ascii: ","))
            out.put(ruleBytes)
        }
        out.put(#","record":"#)
        out.putDecimal(event.decision.record?.sequence ?? 0)
        out.put(UInt8(ascii: ","))
        out.put(parts.revision)
        out.put(#","sequence":"#)
        out.putDecimal(event.sequence)
        out.put(#","kind":""#)
        out.put(event.kind.name)
        out.put("\"}\n")
        lines.commit(until: out.position)
    }


    /// Hands the lines of this frame to the queue.
    package func flush() {
        guard lines.count > 0 else { return }
        queue.enqueue(lines)
    }
}

/// Encoded receipt lines of one frame, in raw memory the connection keeps and reuses.
package final class ReceiptLines {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var size = 0
    private var capacity: Int
    /// Where each line ends.
    package private(set) var ends: [Int] = []
    /// How many of the lines up to each one (inclusive) are receipts (the others are signals
    /// lines, which the counters and the queue's capacity do not count).
    package private(set) var receiptsThrough: [Int] = []
    package var count: Int { ends.count }
    /// How many of the lines are receipts.
    package var receiptCount: Int { receiptsThrough.last ?? 0 }

    init(capacity: Int = 16_384) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    deinit { base.deallocate() }

    /// Makes room for `extra` more bytes.
    func reserve(_ extra: Int) {
        guard size + extra > capacity else { return }
        var grown = capacity * 2
        while size + extra > grown { grown *= 2 }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        bigger.update(from: base, count: size)
        base.deallocate()
        base = bigger
        capacity = grown
    }

    var end: UnsafeMutablePointer<UInt8> { base + size }

    /// Records a line written from `end` up to `position`; `isReceipt` false for a signals line.
    func commit(until position: UnsafeMutablePointer<UInt8>, isReceipt: Bool = true) {
        size = position - base
        ends.append(size)
        receiptsThrough.append(receiptCount + (isReceipt ? 1 : 0))
    }

    package var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    func removeAll() {
        size = 0
        // A big batch's lines are not kept for the life of the connection.
        if capacity > ReceiptLines.retainedCapacity {
            base.deallocate()
            capacity = 16_384
            base = .allocate(capacity: capacity)
            ends = []
            receiptsThrough = []
        } else {
            ends.removeAll(keepingCapacity: true)
            receiptsThrough.removeAll(keepingCapacity: true)
        }
    }

    /// The most buffer a connection keeps between frames.
    static let retainedCapacity = 1 << 20
}

/// Writes bytes through a raw pointer into space reserved beforehand.
struct RawCursor {
    private(set) var position: UnsafeMutablePointer<UInt8>

    init(_ start: UnsafeMutablePointer<UInt8>) { position = start }

    @inline(__always) mutating func put(_ byte: UInt8) {
        position.pointee = byte
        position += 1
    }

    @inline(__always) mutating func put(_ text: StaticString) {
        text.withUTF8Buffer { put(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always) mutating func put(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { put($0) }
    }

    @inline(__always) mutating func put(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        UnsafeMutableRawPointer(position).copyMemory(from: source, byteCount: bytes.count)
        position += bytes.count
    }

    mutating func putDecimal(_ value: UInt64) {
        var digits = 1
        var scale: UInt64 = 10
        while digits < 20 && value >= scale {
            digits += 1
            scale = scale &* 10
        }
        var n = value
        var at = position + digits
        repeat {
            at -= 1
            at.pointee = UInt8(ascii: "0") + UInt8(n % 10)
            n /= 10
        } while n > 0
        position += digits
    }

    /// A quoted JSON string; bytes needing no escape are copied whole, invalid UTF-8 is replaced.
    mutating func putString(_ bytes: UnsafeRawBufferPointer) {
        put(UInt8(ascii: "\""))
        var plain = true
        for byte in bytes where byte < 0x20 || byte >= 0x80 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            plain = false
            break
        }
        if plain {
            put(bytes)
        } else {
            var escaped: [UInt8] = []
            ReceiptJSON.appendString(bytes, to: &escaped)
            escaped.withUnsafeBytes { raw in put(UnsafeRawBufferPointer(rebasing: raw[1..<(raw.count - 1)])) }
        }
        put(UInt8(ascii: "\""))
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

}

/// `Timestamp.rfc3339(fraction: .microseconds)`, allocation-free: the date and time of the last
/// second are formatted once (by `Timestamp`) and kept; each instant adds its six fraction digits.
struct TimeFormatter {
    private var cachedSecond = Int64.min
    private var prefix: [UInt8] = []

    mutating func write(_ instant: Timestamp, to out: inout RawCursor) {
        let (second, nanos) = instant.secondsAndNanos
        let fraction = Int64(nanos / 1000)
        if second != cachedSecond {
            cachedSecond = second
            prefix.removeAll(keepingCapacity: true)
            instant.appendRFC3339(to: &prefix, fraction: .secondOnly)
        }
        out.put(prefix)
        out.put(UInt8(ascii: "."))
        var divisor: Int64 = 100_000
        while divisor > 0 {
            out.put(UInt8(ascii: "0") + UInt8((fraction / divisor) % 10))
            divisor /= 10
        }
        out.put(UInt8(ascii: "Z"))
    }
}
