import ConsentWire
import NIOCore
import Synchronization

/// The open connections: admits new ones up to the limit, and asks them all to finish at shutdown.
final class ConnectionRegistry: Sendable {
    private struct State {
        var open: [ObjectIdentifier: Channel] = [:]
        var shuttingDown = false
    }
    private let state = Mutex(State())
    private let server: ServerState

    init(state: ServerState) { self.server = state }

    /// Registers a new connection; false (and counted as refused) when over the limit or shutting down.
    func admit(_ channel: Channel) -> Bool {
        let limit = server.configuration.maximumConnections
        let admitted = state.withLock { state -> Bool in
            guard !state.shuttingDown, state.open.count < limit else { return false }
            state.open[ObjectIdentifier(channel)] = channel
            return true
        }
        guard admitted else {
            ServerCounters.bump(server.counters.connectionsRefused)
            return false
        }
        ServerCounters.bump(server.counters.connectionsAccepted)
        ServerCounters.bump(server.counters.connectionsOpen)
        let id = ObjectIdentifier(channel)
        channel.closeFuture.whenComplete { _ in
            self.state.withLock { _ = $0.open.removeValue(forKey: id) }
            self.server.counters.connectionsOpen.subtract(1, ordering: .relaxed)
        }
        return true
    }

    var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    /// Stops admitting, asks every connection to finish what it has read and close, and waits
    /// until they have (at most `limit`).
    func quiesce(limit: Duration = .seconds(10)) async {
        let channels = state.withLock { state -> [Channel] in
            state.shuttingDown = true
            return Array(state.open.values)
        }
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(QuiesceEvent()) }
        let deadline = ContinuousClock.now + limit
        while state.withLock({ !$0.open.isEmpty }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        for channel in state.withLock({ Array($0.open.values) }) { channel.close(promise: nil) }
    }
}

/// Installed instead of the request handlers on a connection that is refused: answers with
/// one error frame and closes.
final class RefuseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let code: Consentd_V1_ErrorCode
    let message: String

    init(code: Consentd_V1_ErrorCode, message: String) {
        self.code = code
        self.message = message
    }

    func channelActive(context: ChannelHandlerContext) {
        if let payload = try? Consentd_V1_Response.error(id: 0, code, message).serializedBytes() as [UInt8] {
            var buffer = context.channel.allocator.buffer(capacity: payload.count + 4)
            buffer.writeBytes(FrameCodec.frame(payload))
            context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
