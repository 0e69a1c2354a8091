import ConsentModel

/// Writes protobuf fields: varints, tags, strings, `google.protobuf.Timestamp`s, each with the
/// size function that announces it — a size and its writer share one rule per field (they once
/// disagreed about an empty Timestamp, and the frame broke).
public enum WireWriter {
    @inlinable @inline(__always)
    public static func varint<S: WireSink>(_ value: UInt64, into sink: inout S) {
        var value = value
        while value >= 0x80 {
            sink.writeWireByte(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        sink.writeWireByte(UInt8(value))
    }

    @inlinable @inline(__always)
    public static func size(_ value: UInt64) -> Int { FrameCodec.varintSize(value) }

    /// Tag and varint, skipped when zero (proto3 default).
    @inlinable @inline(__always)
    public static func varintField<S: WireSink>(_ field: UInt64, _ value: UInt64, into sink: inout S) {
        guard value != 0 else { return }
        varint(field << 3, into: &sink)
        varint(value, into: &sink)
    }

    @inlinable @inline(__always)
    public static func varintFieldSize(_ field: UInt64, _ value: UInt64) -> Int {
        value == 0 ? 0 : size(field << 3) + size(value)
    }

    /// Tag and varint written even when zero: a present proto3 `optional` field.
    @inlinable @inline(__always)
    public static func presentVarintField<S: WireSink>(_ field: UInt64, _ value: UInt64, into sink: inout S) {
        varint(field << 3, into: &sink)
        varint(value, into: &sink)
    }

    @inlinable @inline(__always)
    public static func presentVarintFieldSize(_ field: UInt64, _ value: UInt64) -> Int {
        size(field << 3) + size(value)
    }

    /// A bytes or string field, skipped when empty (proto3 default).
    @inlinable @inline(__always)
    public static func bytesField<S: WireSink>(_ field: UInt64, _ bytes: UnsafeRawBufferPointer, into sink: inout S) {
        guard bytes.count > 0 else { return }
        varint(field << 3 | 2, into: &sink)
        varint(UInt64(bytes.count), into: &sink)
        sink.writeWireBytes(bytes)
    }

    @inlinable @inline(__always)
    public static func bytesFieldSize(_ field: UInt64, _ count: Int) -> Int {
        count == 0 ? 0 : size(field << 3 | 2) + size(UInt64(count)) + count
    }

    @inlinable
    public static func stringField<S: WireSink>(_ field: UInt64, _ text: String, into sink: inout S) {
        var text = text
        text.withUTF8 { bytesField(field, UnsafeRawBufferPointer($0), into: &sink) }
    }

    /// One element of a repeated string field: written even when empty (unlike a singular field,
    /// every element of a repeated field is on the wire).
    @inlinable
    public static func repeatedStringElement<S: WireSink>(_ field: UInt64, _ text: String, into sink: inout S) {
        var text = text
        text.withUTF8 { bytes in
            varint(field << 3 | 2, into: &sink)
            varint(UInt64(bytes.count), into: &sink)
            if bytes.count > 0 { sink.writeWireBytes(UnsafeRawBufferPointer(bytes)) }
        }
    }

    /// A message field's tag and length; its body follows.
    @inlinable @inline(__always)
    public static func messageHeader<S: WireSink>(_ field: UInt64, bodySize: Int, into sink: inout S) {
        varint(field << 3 | 2, into: &sink)
        varint(UInt64(bodySize), into: &sink)
    }

    /// The size of a present message field: tag, length and body (written even when the body is empty).
    @inlinable @inline(__always)
    public static func messageFieldSize(_ field: UInt64, bodySize: Int) -> Int {
        size(field << 3 | 2) + size(UInt64(bodySize)) + bodySize
    }

    /// The size of a `Timestamp` message's body (its fields, without tag and length).
    @inlinable
    public static func timestampBodySize(_ timestamp: Timestamp) -> Int {
        let (seconds, nanos) = timestamp.secondsAndNanos
        return varintFieldSize(1, UInt64(bitPattern: seconds)) + varintFieldSize(2, UInt64(UInt32(bitPattern: nanos)))
    }

    /// The size of a present `Timestamp` field: tag, length and body. A present message field is
    /// written even when its body is empty (the Unix epoch), as every protobuf library writes it.
    @inlinable
    public static func timestampFieldSize(_ field: UInt64, _ timestamp: Timestamp) -> Int {
        messageFieldSize(field, bodySize: timestampBodySize(timestamp))
    }

    @inlinable
    public static func timestampField<S: WireSink>(_ field: UInt64, _ timestamp: Timestamp, into sink: inout S) {
        let (seconds, nanos) = timestamp.secondsAndNanos
        messageHeader(field, bodySize: timestampBodySize(timestamp), into: &sink)
        varintField(1, UInt64(bitPattern: seconds), into: &sink)
        varintField(2, UInt64(UInt32(bitPattern: nanos)), into: &sink)
    }

    /// Writes bytes encoded earlier (a pre-encoded field).
    @inlinable @inline(__always)
    public static func encoded<S: WireSink>(_ bytes: [UInt8], into sink: inout S) {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { sink.writeWireBytes($0) }
    }

    /// Writes `range` of bytes encoded earlier (pre-encoded fields).
    @inlinable @inline(__always)
    public static func slice<S: WireSink>(_ range: Range<Int>, of encoded: UnsafeRawBufferPointer, into sink: inout S) {
        guard !range.isEmpty else { return }
        sink.writeWireBytes(UnsafeRawBufferPointer(rebasing: encoded[range]))
    }
}
