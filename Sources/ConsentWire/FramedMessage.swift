import SwiftProtobuf

/// Why bytes are not exactly one frame.
public struct FrameDecodingError: Error, CustomStringConvertible {
    public let description: String
}

extension SwiftProtobuf.Message {
    /// Decodes exactly one frame — a length prefix and the message — as `FrameCodec.frame` writes it.
    public init(frame: [UInt8]) throws {
        let prefix = frame.withUnsafeBytes { FrameCodec.readPrefix($0) }
        guard case let .length(length, prefixBytes) = prefix else { throw FrameDecodingError(description: "no complete length prefix") }
        guard UInt64(frame.count - prefixBytes) == length else {
            throw FrameDecodingError(description: "the prefix announces \(length) bytes, \(frame.count - prefixBytes) follow")
        }
        try self.init(serializedBytes: Array(frame[prefixBytes...]))
    }
}
