import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The Unix socket server as a Service: binds, serves until graceful shutdown, then stops
/// accepting, lets every connection finish what it has read, and removes the socket file.
public final class SocketListener: Service, Sendable {
    let state: ServerState
    let group: EventLoopGroup
    let threadPool: NIOThreadPool
    private let ready: Mutex<[CheckedContinuation<Void, Error>]> = Mutex([])
    private let readyState = Mutex<Result<Void, Error>?>(nil)

    init(state: ServerState, group: EventLoopGroup, threadPool: NIOThreadPool) {
        self.state = state
        self.group = group
        self.threadPool = threadPool
    }

    /// Returns once the socket is bound and accepting (or throws if binding failed).
    public func waitUntilListening() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let result = readyState.withLock { state -> Result<Void, Error>? in
                if let state { return state }
                ready.withLock { $0.append(continuation) }
                return nil
            }
            if let result { continuation.resume(with: result) }
        }
    }

    private func signalReady(_ result: Result<Void, Error>) {
        let waiting = readyState.withLock { state -> [CheckedContinuation<Void, Error>] in
            state = result
            return ready.withLock { list in defer { list = [] }; return list }
        }
        for continuation in waiting { continuation.resume(with: result) }
    }

    public func run() async throws {
        let configuration = state.configuration
        let path = configuration.socket
        let channel: Channel
        let registry = ConnectionRegistry(state: state)
        do {
            try SocketPath.prepare(path)
            let state = self.state
            let threadPool = self.threadPool
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handlers = channel.pipeline.syncOperations
                        guard registry.admit(channel) else {
                            let shuttingDown = registry.isShuttingDown
                            try handlers.addHandler(RefuseHandler(
                                code: shuttingDown ? .shuttingDown : .resourceExhausted,
                                message: shuttingDown ? "the daemon is shutting down" : "too many connections (limit \(configuration.maximumConnections)); retry later"
                            ))
                            return
                        }
                        if configuration.idleTimeout > 0 {
                            try handlers.addHandler(IdleStateHandler(readTimeout: .milliseconds(Int64(configuration.idleTimeout * 1000))))
                        }
                        try handlers.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameSize: configuration.maximumFrameSize, frameTimeout: configuration.frameTimeout)))
                        try handlers.addHandler(RequestHandler(state: state, threadPool: threadPool))
                    }
                }
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false)
                .get()
            guard chmod(path, mode_t(configuration.socketMode)) == 0 else {
                throw SocketPathError(description: "cannot set mode \(String(configuration.socketMode, radix: 8)) on \(path): \(String(cString: strerror(errno)))")
            }
        } catch {
            signalReady(.failure(error))
            throw error
        }
        state.logger.info("listening", metadata: ["socket": "\(path)", "mode": "\(String(configuration.socketMode, radix: 8))"])
        signalReady(.success(()))

        // Serve until asked to shut down gracefully (or cancelled).
        try? await gracefulShutdown()

        state.logger.info("shutting down: no new connections; finishing requests in flight")
        try? await channel.close()
        await registry.quiesce()
        SocketPath.remove(path)
        state.logger.info("socket removed", metadata: ["socket": "\(path)"])
    }
}

