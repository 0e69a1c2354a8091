import ConsentWire
import NIOCore

/// On the server channel: counts connections, refuses those over the limit with a
/// RESOURCE_EXHAUSTED error frame, and keeps the open ones for graceful shutdown.
final class ConnectionLimiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    private let state: ServerState
    private(set) var open: [ObjectIdentifier: Channel] = [:]
    private var shutdownPromise: EventLoopPromise<Void>?

    init(state: ServerState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        if open.count >= state.configuration.maximumConnections || shutdownPromise != nil {
            ServerCounters.bump(state.counters.connectionsRefused)
            let message = shutdownPromise != nil ? "the daemon is shutting down" : "too many connections (limit \(state.configuration.maximumConnections)); retry later"
            let code: Consentd_V1_ErrorCode = shutdownPromise != nil ? .shuttingDown : .resourceExhausted
            if let payload = try? Consentd_V1_Response.error(id: 0, code, message).serializedBytes() as [UInt8] {
                var buffer = child.allocator.buffer(capacity: payload.count + 4)
                buffer.writeBytes(FrameCodec.frame(payload))
                child.writeAndFlush(buffer).whenComplete { _ in child.close(promise: nil) }
            } else {
                child.close(promise: nil)
            }
            return
        }
        let id = ObjectIdentifier(child)
        open[id] = child
        ServerCounters.bump(state.counters.connectionsAccepted)
        ServerCounters.bump(state.counters.connectionsOpen)
        let loop = context.eventLoop
        child.closeFuture.hop(to: loop).assumeIsolated().whenComplete { _ in
            self.open[id] = nil
            self.state.counters.connectionsOpen.subtract(1, ordering: .relaxed)
            if self.open.isEmpty, let promise = self.shutdownPromise { promise.succeed(()) }
        }
        context.fireChannelRead(data)
    }

    /// Asks every open connection to finish and close; the future completes when all have.
    func quiesce(context eventLoop: EventLoop) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        shutdownPromise = promise
        if open.isEmpty { promise.succeed(()) }
        for child in open.values {
            child.pipeline.fireUserInboundEventTriggered(QuiesceEvent())
        }
        return promise.futureResult
    }
}
