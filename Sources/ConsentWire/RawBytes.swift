import SwiftProtobuf

/// A borrowed view of bytes that SwiftProtobuf can decode from without copying them into an array.
/// Valid only inside the closure that produced the buffer.
public struct RawBytes: SwiftProtobufContiguousBytes {
    private var storage: [UInt8]?
    private let buffer: UnsafeRawBufferPointer

    /// Wraps a buffer for decoding.
    public init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
        self.storage = nil
    }

    public init(repeating: UInt8, count: Int) {
        storage = [UInt8](repeating: repeating, count: count)
        buffer = UnsafeRawBufferPointer(start: nil, count: 0)
    }

    public init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        storage = Array(sequence)
        buffer = UnsafeRawBufferPointer(start: nil, count: 0)
    }

    public var count: Int { storage?.count ?? buffer.count }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if let storage { return try storage.withUnsafeBytes(body) }
        return try body(buffer)
    }

    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        if storage == nil { storage = Array(buffer) }
        return try storage!.withUnsafeMutableBytes(body)
    }
}

extension Consentd_V1_Request {
    /// Whether the request or the message of its method carries fields this build does not know.
    public var hasUnknownFields: Bool {
        if !unknownFields.data.isEmpty { return true }
        switch method {
        case let .check(m)?: return !m.unknownFields.data.isEmpty || !m.context.unknownFields.data.isEmpty
        case let .checkBatch(m)?: return !m.unknownFields.data.isEmpty || !m.context.unknownFields.data.isEmpty || m.items.contains { !$0.unknownFields.data.isEmpty }
        case let .listUses(m)?: return !m.unknownFields.data.isEmpty || !m.context.unknownFields.data.isEmpty
        case let .recordConsent(m)?: return !m.unknownFields.data.isEmpty || m.records.contains { !$0.unknownFields.data.isEmpty }
        case let .history(m)?: return !m.unknownFields.data.isEmpty
        case let .eraseSubject(m)?: return !m.unknownFields.data.isEmpty
        case let .status(m)?: return !m.unknownFields.data.isEmpty
        case nil: return false
        }
    }
}
