import ConsentWire
import NIOCore
import Synchronization

/// The open connections: admits new ones up to the limit, and asks them all to finish at shutdown.
final class ConnectionRegistry: Sendable {
    private struct State {
        var open: [ObjectIdentifier: Channel] = [:]
        var perUID: [UInt32: Int] = [:]
        var shuttingDown = false
    }

    /// Why a connection was refused.
    enum Refusal {
        case shuttingDown
        case tooManyConnections(limit: Int)
        case tooManyForUID(uid: UInt32, limit: Int)
    }
    private let state = Mutex(State())
    /// Most connections at once, and per uid.
    private let limit: Int
    private let perUIDLimit: Int
    private let counters: ServerCounters

    init(limit: Int, perUIDLimit: Int, counters: ServerCounters) {
        self.limit = limit
        self.perUIDLimit = perUIDLimit
        self.counters = counters
    }

    /// Registers a new connection of a peer with `uid` (nil: unknown credentials, not capped
    /// per uid); returns why it is refused (and counts it), or nil when admitted.
    func admit(_ channel: Channel, uid: UInt32?) -> Refusal? {
        let limit = self.limit
        let perUIDLimit = self.perUIDLimit
        let refusal = state.withLock { state -> Refusal? in
            if state.shuttingDown { return .shuttingDown }
            guard state.open.count < limit else { return .tooManyConnections(limit: limit) }
            if let uid {
                guard state.perUID[uid, default: 0] < perUIDLimit else { return .tooManyForUID(uid: uid, limit: perUIDLimit) }
                state.perUID[uid, default: 0] += 1
            }
            state.open[ObjectIdentifier(channel)] = channel
            return nil
        }
        if let refusal {
            ServerCounters.bump(counters.connectionsRefused)
            return refusal
        }
        ServerCounters.bump(counters.connectionsAccepted)
        ServerCounters.bump(counters.connectionsOpen)
        let id = ObjectIdentifier(channel)
        channel.closeFuture.whenComplete { _ in
            self.state.withLock { state in
                _ = state.open.removeValue(forKey: id)
                if let uid {
                    let left = state.perUID[uid, default: 1] - 1
                    state.perUID[uid] = left > 0 ? left : nil
                }
            }
            self.counters.connectionsOpen.subtract(1, ordering: .relaxed)
        }
        return nil
    }

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
