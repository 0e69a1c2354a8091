import ConsentTransport
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

    /// Descriptors kept for everything but connections: the store, receipts, policy files,
    /// the metrics listener, the event loops' own.
    static let reservedDescriptors = 128

    /// Raises the soft open-file limit to the hard one when `connections` (plus the reserve)
    /// would not fit; a warning when they still do not.
    static func fitDescriptorLimit(connections: Int) -> String? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        let needed = rlim_t(connections + reservedDescriptors)
        if limit.rlim_cur < needed, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = min(limit.rlim_max, needed)
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        guard limit.rlim_cur < needed else { return nil }
        return "max-connections \(connections) does not fit the open-file limit \(limit.rlim_cur) (hard limit \(limit.rlim_max)) with \(reservedDescriptors) descriptors kept for the store, receipts and policies: past about \(Int(limit.rlim_cur) - reservedDescriptors) connections new ones wait in the backlog; lower --max-connections or raise the limit (ulimit -n)"
    }

    public func run() async throws {
        let configuration = state.configuration
        let path = configuration.socket
        let channel: Channel
        let identity: SocketPath.Identity
        let registry = ConnectionRegistry(limit: configuration.maximumConnections, perUIDLimit: configuration.effectiveConnectionsPerUID, counters: state.counters)
        if let warning = Self.fitDescriptorLimit(connections: configuration.maximumConnections) {
            state.logger.warning("\(warning)")
        }
        var staging: SocketPath.Staging?
        do {
            try SocketPath.prepare(path)
            staging = try SocketPath.staging(for: path)
            // Too long a path to stage: bind in place with a umask that leaves no wider window.
            let previousMask: mode_t? = staging == nil ? umask(0o777 & ~mode_t(configuration.socketMode)) : nil
            defer { if let previousMask { umask(previousMask) } }
            let bindPath = staging?.temporaryPath ?? path
            let state = self.state
            let threadPool = self.threadPool
            let services = state.requestServices
            let limits = ConnectionLimits(configuration)
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                // Out of descriptors, accept fails at once and forever: back off instead of
                // spinning a core (connections wait in the backlog meanwhile).
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler())
                    }
                }
                // At most 4 reads of up to 64 KiB per read cycle: what one connection can have
                // read and not yet answered is bounded (see RequestHandler).
                .childChannelOption(.maxMessagesPerRead, value: 4)
                .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 4096, maximum: 65_536))
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handlers = channel.pipeline.syncOperations
                        if let refusal = registry.admit(channel, uid: PeerCredentials.read(channel)?.uid) {
                            switch refusal {
                            case .shuttingDown:
                                try handlers.addHandler(RefuseHandler(code: .shuttingDown, message: "the daemon is shutting down"))
                            case let .tooManyConnections(limit):
                                try handlers.addHandler(RefuseHandler(code: .resourceExhausted, message: "too many connections (limit \(limit)); retry later"))
                            case let .tooManyForUID(uid, limit):
                                try handlers.addHandler(RefuseHandler(code: .resourceExhausted, message: "too many connections from uid \(uid) (limit \(limit) per uid); retry later"))
                            }
                            return
                        }
                        if configuration.idleTimeout > 0 {
                            try handlers.addHandler(IdleStateHandler(readTimeout: .milliseconds(Int64(configuration.idleTimeout * 1000))))
                        }
                        let processor = RequestProcessor(services: services, connection: state.nextConnectionNumber())
                        try handlers.addHandler(RequestHandler(processor: processor, limits: limits, threadPool: threadPool))
                    }
                }
                .bind(unixDomainSocketPath: bindPath, cleanupExistingSocketFile: false)
                .get()
            guard chmod(bindPath, mode_t(configuration.socketMode)) == 0 else {
                throw SocketPathError(description: "cannot set mode \(String(configuration.socketMode, radix: 8)) on \(path): \(String(cString: strerror(errno)))")
            }
            if let staging {
                identity = try staging.publish()
            } else if let found = SocketPath.identity(of: path) {
                identity = found
            } else {
                throw SocketPathError(description: "cannot stat the socket \(path): \(String(cString: strerror(errno)))")
            }
        } catch {
            staging?.discard()
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
        SocketPath.remove(path, ifStill: identity)
        state.logger.info("socket removed", metadata: ["socket": "\(path)"])
    }
}

