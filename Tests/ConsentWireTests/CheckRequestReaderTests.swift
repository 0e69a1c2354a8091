import ConsentModel
import ConsentWire
import SwiftProtobuf
import Testing

/// The zero-copy request readers may decline anything (the general decoder then answers), but must
/// never read a frame that SwiftProtobuf refuses. Tags are where they once differed.
@Suite struct CheckRequestReaderTests {
    /// `field`/`wire` as a tag spelled in `minimal + extra` bytes (continuation bytes of zeros).
    static func tag(_ field: UInt64, _ wire: UInt64, extra: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        FrameCodec.appendVarint(field << 3 | wire, to: &bytes)
        guard extra > 0 else { return bytes }
        bytes[bytes.count - 1] |= 0x80
        bytes += [UInt8](repeating: 0x80, count: extra - 1) + [0x00]
        return bytes
    }

    static func field(_ number: UInt64, _ body: [UInt8], extra: Int) -> [UInt8] {
        var bytes = tag(number, 2, extra: extra)
        FrameCodec.appendVarint(UInt64(body.count), to: &bytes)
        return bytes + body
    }

    /// Every tag of a Check — top level, CheckRequest, Context — spelled in 1 to 11 bytes, one at a time.
    @Test(arguments: 0..<6, 0...10)
    func theCheckReaderReadsTagsAsSwiftProtobufDoes(position: Int, extra: Int) {
        func x(_ p: Int) -> Int { p == position ? extra : 0 }
        let context = Self.field(1, Array("DE".utf8), extra: x(4)) + Self.tag(2, 0, extra: x(5)) + [1]
        let check = Self.field(1, Array("a".utf8), extra: x(2)) + Self.field(2, Array("p".utf8), extra: 0)
            + Self.field(3, Array("d".utf8), extra: 0) + Self.field(4, context, extra: x(3))
        let request = Self.tag(1, 0, extra: x(0)) + [3] + Self.field(2, check, extra: x(1))
        let decoded = try? Consentd_V1_Request(serializedBytes: request)
        let parsed = request.withUnsafeBytes { ParsedCheck.parse($0) }
        #expect((parsed != nil) == (decoded != nil), "tag \(position) in \(1 + extra) bytes: reader \(parsed != nil), SwiftProtobuf \(decoded != nil)")
        if let parsed, let decoded {
            #expect(parsed.id == decoded.id && parsed.gpc == decoded.check.context.gpc)
        }
    }

    /// The same for a CheckBatch: the method's tag, an item's, an item field's, the context's.
    @Test(arguments: 0..<4, 0...10)
    func theBatchReaderReadsTagsAsSwiftProtobufDoes(position: Int, extra: Int) {
        func x(_ p: Int) -> Int { p == position ? extra : 0 }
        let item = Self.field(1, Array("a".utf8), extra: x(2)) + Self.field(2, Array("p".utf8), extra: 0) + Self.field(3, Array("d".utf8), extra: 0)
        let batch = Self.field(1, item, extra: x(1)) + Self.field(2, Self.field(1, Array("DE".utf8), extra: 0), extra: x(3))
        let request = [0x08, 0x07] + Self.field(3, batch, extra: x(0))
        let decoded = try? Consentd_V1_Request(serializedBytes: request)
        var reader = ParsedBatch()
        let parsed = request.withUnsafeBytes { reader.parse($0, maximumItems: 8) }
        #expect(parsed == (decoded != nil), "tag \(position) in \(1 + extra) bytes: reader \(parsed), SwiftProtobuf \(decoded != nil)")
        if parsed { #expect(reader.items.count == 1 && reader.id == 7) }
    }

    /// A value varint (the request id, a bool) spelled in 1 to 11 bytes, the tenth byte anything:
    /// the readers and the shape scan read it exactly as SwiftProtobuf does (up to ten bytes, the
    /// tenth's excess bits ignored) — one varint rule for every reader in ConsentWire.
    @Test(arguments: [0, 1, 2, 0x7F, 0xFF])
    func valueVarintsAreReadAsSwiftProtobufReadsThem(last: Int) {
        for length in 1...11 {
            // 0x81, 0x80, ... then `last` (with its continuation bit cleared, except past ten bytes).
            var varint: [UInt8] = [UInt8](repeating: 0x80, count: length - 1)
            if length > 1 { varint[0] = 0x81 }
            varint.append(length > 10 ? 0x00 : UInt8(last & 0x7F))
            for position in 0..<2 {
                let id = position == 0 ? varint : [0x07]
                let gpc = position == 1 ? varint : [0x01]
                let context = Self.field(1, Array("DE".utf8), extra: 0) + [0x10] + gpc
                let check = Self.field(1, Array("a".utf8), extra: 0) + Self.field(2, Array("p".utf8), extra: 0)
                    + Self.field(3, Array("d".utf8), extra: 0) + Self.field(4, context, extra: 0)
                let request = [0x08] + id + Self.field(2, check, extra: 0)
                let decoded = try? Consentd_V1_Request(serializedBytes: request)
                let parsed = request.withUnsafeBytes { ParsedCheck.parse($0) }
                let shape = request.withUnsafeBytes { RequestScan.shape($0) }
                let what = "varint of \(length) bytes ending \(last) as \(position == 0 ? "id" : "gpc")"
                #expect((parsed != nil) == (decoded != nil), "\(what): reader \(parsed != nil), SwiftProtobuf \(decoded != nil)")
                // The scan walks the top level (and a batch's or a write's entries), not a Check's fields.
                if position == 0 { #expect((shape != nil) == (decoded != nil), "\(what): scan \(shape != nil), SwiftProtobuf \(decoded != nil)") }
                if let decoded {
                    #expect(parsed?.id == decoded.id && parsed?.gpc == decoded.check.context.gpc, "\(what)")
                    #expect(shape?.id == decoded.id, "\(what)")
                }
            }
        }
    }

    /// The fuzz finding itself: a CheckBatch tag in eight bytes, refused by the decoder.
    @Test func anEightByteBatchTagIsDeclined() {
        let frame: [UInt8] = [0x9A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00]
        #expect((try? Consentd_V1_Request(serializedBytes: frame)) == nil)
        var reader = ParsedBatch()
        #expect(!frame.withUnsafeBytes { reader.parse($0, maximumItems: 8) })
    }
}

/// The fast path takes a string field only when every byte is ASCII (the general decoder refuses
/// any frame whose strings are not UTF-8): one byte ≥ 0x80 anywhere, at any length and alignment
/// of the word-at-a-time scan, declines.
@Suite struct ASCIIStringTests {
    @Test func oneNonASCIIByteAnywhereDeclines() {
        for length in 0...100 {
            for offset in 0..<3 {
                // `offset` bytes before the field move the scan's alignment.
                var frame = [UInt8](repeating: 0x41, count: offset)
                frame.append(UInt8(length))
                let start = frame.count
                frame += (0..<length).map { UInt8(0x20 + ($0 * 7) % 0x5F) }
                for position in [-1] + Array(0..<length) {
                    var bytes = frame
                    if position >= 0 { bytes[start + position] = [0x80, 0xC3, 0xFF][position % 3] }
                    bytes.withUnsafeBytes { raw in
                        var reader = FastWireReader(bytes: raw, start: offset, end: raw.count)
                        let range = reader.asciiString()
                        if position < 0 {
                            #expect(range == start..<(start + length))
                        } else {
                            #expect(range == nil, "length \(length), offset \(offset), non-ASCII at \(position)")
                        }
                    }
                }
            }
        }
    }
}
