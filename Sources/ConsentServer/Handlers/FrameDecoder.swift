import ConsentWire
import NIOCore

/// A frame the daemon refuses; the connection is answered with an error and closed.
enum FrameError: Error, CustomStringConvertible {
    case malformedLength
    case tooLarge(UInt64, limit: Int)
    case malformedMessage(String)
    case truncated(Int)

    var code: Consentd_V1_ErrorCode {
        switch self {
        case .malformedLength, .malformedMessage, .truncated: .malformedFrame
        case .tooLarge: .frameTooLarge
        }
    }

    var description: String {
        switch self {
        case .malformedLength: "the length prefix is not a valid base-128 varint"
        case let .tooLarge(length, limit): "a frame of \(length) bytes exceeds the limit of \(limit) bytes"
        case let .malformedMessage(reason): "the frame is not a consentd.v1.Request: \(reason)"
        case let .truncated(bytes): "the connection ended inside a frame (\(bytes) bytes of it received)"
        }
    }
}

/// Splits the byte stream into varint-length-delimited frames, refusing oversized ones from
/// their prefix alone (nothing of an oversized frame is buffered).
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    let maximumFrameSize: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let prefix = buffer.withUnsafeReadableBytes { FrameCodec.readPrefix($0) }
        switch prefix {
        case .incomplete:
            return .needMoreData
        case .malformed:
            throw FrameError.malformedLength
        case let .length(length, prefixBytes):
            guard length <= UInt64(maximumFrameSize) else { throw FrameError.tooLarge(length, limit: maximumFrameSize) }
            guard buffer.readableBytes >= prefixBytes + Int(length) else { return .needMoreData }
            buffer.moveReaderIndex(forwardBy: prefixBytes)
            let frame = buffer.readSlice(length: Int(length))!
            context.fireChannelRead(wrapInboundOut(frame))
            return .continue
        }
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            // The peer stopped sending in the middle of a frame; it may still be reading.
            let received = buffer.readableBytes
            buffer.moveReaderIndex(to: buffer.writerIndex)
            throw FrameError.truncated(received)
        }
        return .needMoreData
    }
}
