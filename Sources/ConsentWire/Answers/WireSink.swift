/// Where the answer writers put bytes: the daemon's outgoing `ByteBuffer` (its conformance lives
/// with the transport), an array in tests and tools. The writers are `@inlinable` and generic, so
/// each sink gets its own specialised code and the hot path pays no dynamic dispatch.
public protocol WireSink {
    /// Appends one byte.
    mutating func writeWireByte(_ byte: UInt8)
    /// Appends `bytes`.
    mutating func writeWireBytes(_ bytes: UnsafeRawBufferPointer)
}

extension Array: WireSink where Element == UInt8 {
    @inlinable
    public mutating func writeWireByte(_ byte: UInt8) { append(byte) }

    @inlinable
    public mutating func writeWireBytes(_ bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }
}
