import ConsentWire
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A frame the daemon refuses; the connection is answered with an error and closed.
package enum FrameError: Error, Equatable, CustomStringConvertible {
    case malformedLength
    case tooLarge(UInt64, limit: Int)
    case malformedMessage(String)
    case truncated(Int)
    case tooSlow(received: Int, seconds: Double)

    package var code: Consentd_V1_ErrorCode {
        switch self {
        case .malformedLength, .malformedMessage, .truncated, .tooSlow: .malformedFrame
        case .tooLarge: .frameTooLarge
        }
    }

    package var description: String {
        switch self {
        case .malformedLength: "the length prefix is not a valid base-128 varint"
        case let .tooLarge(length, limit): "a frame of \(length) bytes exceeds the limit of \(limit) bytes"
        case let .malformedMessage(reason): "the frame is not a consentd.v1.Request: \(reason)"
        case let .truncated(bytes): "the connection ended inside a frame (\(bytes) bytes of it received)"
        case let .tooSlow(bytes, seconds): "a frame did not arrive whole within \(seconds) s (\(bytes) bytes of it received)"
        }
    }
}

/// Splits a byte stream into varint-length-delimited frames, refusing oversized ones from
/// their prefix alone (nothing of an oversized frame is buffered). The one home of the framing
/// rules: the request handler and the echo floor both use it.
///
/// A frame must also arrive whole within `frameTimeout` of its first byte, so a peer that drips
/// a byte at a time (which the idle timeout alone would never catch) is answered and closed.
package struct FrameSplitter {
    @usableFromInline let maximumFrameSize: Int
    /// Nanoseconds; 0 = no limit.
    @usableFromInline let frameTimeout: Int64
    @usableFromInline var partialSince: Int64?

    package init(maximumFrameSize: Int, frameTimeout: Double = 0) {
        self.maximumFrameSize = maximumFrameSize
        self.frameTimeout = Int64(frameTimeout * 1e9)
    }

    /// The next whole frame at the front of `buffer` (moving past it), or nil when more bytes
    /// are needed; throws for a malformed or oversized prefix, or a frame that is too slow.
    /// (Inlinable: the daemon's read loop calls it once per frame.)
    @inlinable
    package mutating func next(_ buffer: inout ByteBuffer) throws -> ByteBuffer? {
        let prefix = buffer.withUnsafeReadableBytes { FrameCodec.readPrefix($0) }
        switch prefix {
        case .incomplete:
            try waitForRest(buffer)
            return nil
        case .malformed:
            throw FrameError.malformedLength
        case let .length(length, prefixBytes):
            guard length <= UInt64(maximumFrameSize) else { throw FrameError.tooLarge(length, limit: maximumFrameSize) }
            guard buffer.readableBytes >= prefixBytes + Int(length) else {
                try waitForRest(buffer)
                return nil
            }
            partialSince = nil
            buffer.moveReaderIndex(forwardBy: prefixBytes)
            return buffer.readSlice(length: Int(length))!
        }
    }

    /// Restarts the clock of a partly buffered frame: the reader held reading back (its peer
    /// was not reading its answers), and that time is the reader's, not the peer's.
    @inlinable
    package mutating func restartClock() { partialSince = nil }

    /// When the partly buffered frame runs out of time (monotonic nanoseconds), if one is buffered
    /// and frames have a time limit: the reader checks then even if no more bytes arrive.
    package var partialDeadline: Int64? {
        guard frameTimeout > 0, let since = partialSince else { return nil }
        return since + frameTimeout
    }

    /// The monotonic clock the frame timeout is measured on, in nanoseconds.
    package static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// Called when only part of a frame is buffered: starts its clock, or fails when it ran out.
    @usableFromInline
    mutating func waitForRest(_ buffer: ByteBuffer) throws {
        guard frameTimeout > 0, buffer.readableBytes > 0 else { return }
        let now = Self.now()
        if let since = partialSince {
            if now - since > frameTimeout {
                throw FrameError.tooSlow(received: buffer.readableBytes, seconds: Double(frameTimeout) / 1e9)
            }
        } else {
            partialSince = now
        }
    }

    /// The error for input that ended inside a frame, if it did.
    package static func leftover(_ buffer: ByteBuffer?) -> FrameError? {
        guard let buffer, buffer.readableBytes > 0 else { return nil }
        return .truncated(buffer.readableBytes)
    }
}

/// `FrameSplitter` as a NIO decoder (the echo floor's pipeline).
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    private var splitter: FrameSplitter

    init(maximumFrameSize: Int, frameTimeout: Double = 0) {
        splitter = FrameSplitter(maximumFrameSize: maximumFrameSize, frameTimeout: frameTimeout)
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try splitter.next(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if let error = FrameSplitter.leftover(buffer) {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            throw error
        }
        return .needMoreData
    }
}
