/// The framing of the socket protocol: each message is preceded by its length as a base-128
/// varint (protobuf's "delimited" format). Pure functions over bytes, shared by the server's
/// NIO decoder and the POSIX client.
public enum FrameCodec {
    /// The default largest frame accepted: 1 MiB.
    public static let defaultMaximumFrameSize = 1 << 20

    /// The outcome of reading a length prefix.
    public enum Prefix: Equatable, Sendable {
        /// Not enough bytes yet.
        case incomplete
        /// More than 10 bytes, or a value over 64 bits: not a varint.
        case malformed
        /// The frame length and how many bytes the prefix took.
        case length(UInt64, prefixBytes: Int)
    }

    /// Reads a varint length prefix from the start of `bytes`.
    @inlinable
    public static func readPrefix(_ bytes: UnsafeRawBufferPointer) -> Prefix {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if index == 10 && byte > 1 { return .malformed }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return .length(value, prefixBytes: index) }
            shift += 7
            if index >= 10 { return .malformed }
        }
        return .incomplete
    }

    /// Appends `value` as a varint.
    @inlinable
    public static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// Number of bytes `value` takes as a varint.
    @inlinable
    public static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        var value = value >> 7
        while value != 0 { size += 1; value >>= 7 }
        return size
    }

    /// `payload` with its length prefix.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 5)
        appendVarint(UInt64(payload.count), to: &out)
        out.append(contentsOf: payload)
        return out
    }
}
