/// Where the answer writers put bytes: the daemon's outgoing `ByteBuffer` (its conformance lives
/// with the transport), an array in tests and tools. The writers are `@inlinable` and generic, so
/// each sink gets its own specialised code and the hot path pays no dynamic dispatch.
///
/// A writer that knows its frame's size asks the sink for that many bytes once
/// (`writeReserved`) and fills them through a `ReservedWireBytes` cursor: one capacity check per
/// frame instead of one per byte (a `ByteBuffer` checks bounds and exclusivity on every write).
public protocol WireSink {
    /// Appends one byte.
    mutating func writeWireByte(_ byte: UInt8)
    /// Appends `bytes`.
    mutating func writeWireBytes(_ bytes: UnsafeRawBufferPointer)
    /// Appends exactly `count` bytes written by `body` into reserved space; returns false, having
    /// appended nothing, when `body` did not write exactly `count` bytes (a size and its writer
    /// disagree: the frame would be malformed, so it is not sent).
    mutating func writeReserved(_ count: Int, _ body: (inout ReservedWireBytes) -> Void) -> Bool
}

/// A cursor over reserved bytes: writes never pass the end (an overrun is recorded and the frame
/// refused, never written beyond its space).
public struct ReservedWireBytes: WireSink {
    @usableFromInline var position: UnsafeMutablePointer<UInt8>
    @usableFromInline let end: UnsafeMutablePointer<UInt8>
    @usableFromInline var overran = false

    @inlinable
    public init(_ buffer: UnsafeMutableRawBufferPointer) {
        let start = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        position = start
        end = start + buffer.count
    }

    /// Whether exactly the reserved bytes were written.
    @inlinable public var isComplete: Bool { !overran && position == end }

    @inlinable @inline(__always)
    public mutating func writeWireByte(_ byte: UInt8) {
        guard position < end else { overran = true; return }
        position.pointee = byte
        position += 1
    }

    @inlinable @inline(__always)
    public mutating func writeWireBytes(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count <= end - position else { overran = true; return }
        if let base = bytes.baseAddress { UnsafeMutableRawPointer(position).copyMemory(from: base, byteCount: bytes.count) }
        position += bytes.count
    }

    @inlinable
    public mutating func writeReserved(_ count: Int, _ body: (inout ReservedWireBytes) -> Void) -> Bool {
        guard count <= end - position else { overran = true; return false }
        var inner = ReservedWireBytes(UnsafeMutableRawBufferPointer(start: position, count: count))
        body(&inner)
        guard inner.isComplete else { return false }
        position += count
        return true
    }
}

extension Array: WireSink where Element == UInt8 {
    @inlinable
    public mutating func writeWireByte(_ byte: UInt8) { append(byte) }

    @inlinable
    public mutating func writeWireBytes(_ bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }

    @inlinable
    public mutating func writeReserved(_ count: Int, _ body: (inout ReservedWireBytes) -> Void) -> Bool {
        let start = self.count
        append(contentsOf: repeatElement(0, count: count))
        let complete = withUnsafeMutableBytes { raw -> Bool in
            var cursor = ReservedWireBytes(UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
            body(&cursor)
            return cursor.isComplete
        }
        if !complete { removeLast(count) }
        return complete
    }
}
