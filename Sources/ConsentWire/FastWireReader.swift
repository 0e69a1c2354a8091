/// Reads protobuf wire format in place: varints, tags, length-delimited ranges. No copies, no
/// allocation; every read is bounds-checked and returns nil on malformed input. The one reader
/// behind the allocation-free request paths and `RequestScan`, reading varints and tags exactly
/// as SwiftProtobuf's decoder does, so no reader here accepts or refuses a frame differently.
public struct FastWireReader {
    public let bytes: UnsafeRawBufferPointer
    public var position: Int
    public let end: Int

    @inlinable
    public init(bytes: UnsafeRawBufferPointer, start: Int, end: Int) {
        self.bytes = bytes
        self.position = start
        self.end = end
    }

    @inlinable
    public var hasMore: Bool { position < end }

    /// A varint as SwiftProtobuf reads one: at most ten bytes, the tenth's excess bits ignored.
    @inlinable @inline(__always)
    public mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < end && shift <= 63 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) &<< shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    /// A field's number and wire type, read as SwiftProtobuf reads tags: at most five bytes, the
    /// fifth at most 15 (field numbers below 2^29), field number not 0. (Found by fuzz-frames: a
    /// CheckBatch tag spelled in eight bytes was answered here while the decoder refused the frame.)
    @inlinable @inline(__always)
    public mutating func tag() -> (Int, Int)? {
        let start = position
        guard let key = varint() else { return nil }
        let length = position - start
        guard length < 5 || (length == 5 && bytes[start + 4] <= 15), key >> 3 > 0 else { return nil }
        return (Int(key >> 3), Int(key & 7))
    }

    @inlinable @inline(__always)
    public mutating func lengthDelimited() -> Range<Int>? {
        guard let length = varint(), length <= UInt64(end - position) else { return nil }
        let range = position..<position + Int(length)
        position = range.upperBound
        return range
    }

    /// A string field the fast path may use: ASCII only. Every protobuf string must be valid
    /// UTF-8, and the general decoder refuses a frame with one that is not — even an occurrence
    /// a later one replaces — so the fast path declines anything but ASCII and leaves the rest to
    /// it. (Found by fuzz-frames: a non-UTF-8 channel, and an invalid data category followed by a
    /// valid one, were answered here while the decoder refused the frame.)
    @inlinable
    public mutating func asciiString() -> Range<Int>? {
        guard let range = lengthDelimited() else { return nil }
        // 32 bytes at a time, one test for four words (a consent signal string is hundreds of
        // bytes), then eight, then the rest.
        var index = range.lowerBound
        if let base = bytes.baseAddress {
            while index &+ 32 <= range.upperBound {
                let words = base.loadUnaligned(fromByteOffset: index, as: UInt64.self) | base.loadUnaligned(fromByteOffset: index &+ 8, as: UInt64.self)
                    | base.loadUnaligned(fromByteOffset: index &+ 16, as: UInt64.self) | base.loadUnaligned(fromByteOffset: index &+ 24, as: UInt64.self)
                if words & 0x8080_8080_8080_8080 != 0 { return nil }
                index &+= 32
            }
            while index &+ 8 <= range.upperBound {
                if base.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return nil }
                index &+= 8
            }
        }
        while index < range.upperBound {
            if bytes[index] >= 0x80 { return nil }
            index &+= 1
        }
        return range
    }
}


extension FastWireReader {
    /// Skips a field's value of wire type `wire`; false when malformed or of a group type.
    @inlinable
    public mutating func skip(wire: Int) -> Bool {
        switch wire {
        case 0: return varint() != nil
        case 1: guard end - position >= 8 else { return false }; position += 8; return true
        case 5: guard end - position >= 4 else { return false }; position += 4; return true
        case 2: return lengthDelimited() != nil
        default: return false
        }
    }
}
