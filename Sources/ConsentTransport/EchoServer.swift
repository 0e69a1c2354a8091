import NIOCore
import NIOPosix

/// A Unix-socket server that sends every frame straight back: the floor a load test compares
/// consentd with (same framing, same event loop and flush-per-burst, no decode/decide/encode).
public final class EchoServer: Sendable {
    let channel: Channel
    let group: MultiThreadedEventLoopGroup
    /// The socket path.
    public let path: String
    private let identity: SocketPath.Identity?

    /// Starts echoing on `path` (replacing a stale socket file) with `eventLoops` threads.
    public init(path: String, eventLoops: Int = System.coreCount) throws {
        try SocketPath.prepare(path)
        self.path = path
        group = MultiThreadedEventLoopGroup(numberOfThreads: eventLoops)
        channel = try ServerBootstrap(group: group)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameSize: 64 << 20)))
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false)
            .wait()
        identity = SocketPath.identity(of: path)
    }

    /// Stops the server and removes the socket.
    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
        if let identity { SocketPath.remove(path, ifStill: identity) }
    }
}

/// Writes each frame back with its length prefix; flushes once per read burst.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var needsFlush = false
    private var prefix: [UInt8] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        prefix.removeAll(keepingCapacity: true)
        var length = UInt64(frame.readableBytes)
        while length >= 0x80 { prefix.append(UInt8(truncatingIfNeeded: length) | 0x80); length >>= 7 }
        prefix.append(UInt8(length))
        var buffer = context.channel.allocator.buffer(capacity: prefix.count + frame.readableBytes)
        buffer.writeBytes(prefix)
        buffer.writeImmutableBuffer(frame)
        context.write(wrapOutboundOut(buffer), promise: nil)
        needsFlush = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
