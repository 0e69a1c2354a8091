import ConsentModel
import ConsentReceipts
import ConsentStore
import Logging
import NIOCore
import NIOPosix
import PolicyEngine
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// Why the daemon cannot start.
public struct StartupError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// consentd assembled: policies compiled, consent store loaded into the index, and the services
/// (socket listener, policy reloader, store follower) ready to run in one ServiceGroup.
public final class ConsentDaemon: Sendable {
    /// Reported by Status.
    public static let version = "0.1.0"

    /// Shared state (for tests and embedding).
    public let state: ServerState
    /// The socket server.
    public let listener: SocketListener
    /// The policy reloader (call `reload()` or `requestReload()` to force one).
    public let reloader: PolicyReloader
    let follower: ConsentFollower
    /// The receipts writer, when receipts are on.
    public let receiptWriter: ReceiptWriter?
    /// The Prometheus listener, when metrics are on.
    public let metricsServer: MetricsServer?
    let group: MultiThreadedEventLoopGroup
    let threadPool: NIOThreadPool

    /// Validates the configuration, compiles the policies (refusing to start on any error: the
    /// daemon never serves without a valid set) and loads the consent store.
    /// - Parameter synchronousCommits: false only for fuzzing (see `SQLiteConsentStore`).
    public init(configuration: ServerConfiguration, logger: Logger, synchronousCommits: Bool = true) throws {
        let problems = configuration.problems()
        guard problems.isEmpty else { throw StartupError(description: "invalid configuration:\n  " + problems.joined(separator: "\n  ")) }
        if let directory = configuration.receipts.directory {
            // Before the loader archives the policies there.
            do { try ReceiptFiles.prepare(directory, fileMode: configuration.fileMode) } catch {
                throw StartupError(description: error.description)
            }
        }
        let vocabulary = Vocabulary()
        let loader = PolicyLoader(directory: configuration.policies, receipts: configuration.receipts.directory, fileMode: configuration.fileMode)
        // What the directory holds as it is loaded: a change made after this is a change to watch
        // for, however late the watch starts.
        let loadedSignature = PolicyReloader.signature(of: configuration.policies)
        let loaded: PolicyLoader.Loaded
        switch loader.load(vocabulary: vocabulary) {
        case let .success(success): loaded = success
        case let .failure(failure) where failure.archive:
            throw StartupError(description: "cannot use the receipts directory \(configuration.receipts.directory ?? ""); not starting:\n" + failure.diagnostics.map(\.message).joined(separator: "\n"))
        case let .failure(failure):
            throw StartupError(description: "the policies in \(configuration.policies) cannot be loaded; not starting:\n" + failure.diagnostics.map(\.description).joined(separator: "\n"))
        }
        let set = loaded.set
        for warning in loaded.warnings { logger.warning("policy: \(warning.description)") }
        let store: any ConsentStorage
        let feed: ConsentFeed
        do {
            store = try ConsentStores.open(configuration.store, fileMode: configuration.fileMode,
                                           maximumClockSkew: TimeSpan(microseconds: Int64(configuration.maximumClockSkew * 1_000_000)),
                                           synchronousCommits: synchronousCommits)
            feed = try ConsentFeed(store: store, vocabulary: vocabulary, maximumStaleness: .microseconds(Int64(configuration.maximumStaleness * 1_000_000)))
        } catch {
            throw StartupError(description: "\(error)")
        }
        var receiptQueue: ReceiptQueue?
        var receiptWriter: ReceiptWriter?
        if let directory = configuration.receipts.directory {
            let instance = String(UInt64(clamping: Timestamp.now().microseconds), radix: 36)
            var hasher: (@Sendable (UnsafeRawBufferPointer) -> String)?
            if configuration.receipts.subject == .hash {
                let keyed = store
                hasher = { subject in keyed.subjectHash(bytes: subject) }
            }
            let queue = ReceiptQueue(configuration: configuration.receipts, instance: instance, hasher: hasher)
            do {
                receiptWriter = try ReceiptWriter(queue: queue, directory: directory, fileMode: configuration.fileMode, anchor: ReceiptAnchor(store: store), device: configuration.receipts.writeEveryFileTo, logger: logger)
            } catch let error as ReceiptDirectoryError {
                throw StartupError(description: error.description)
            }
            receiptQueue = queue
        }
        let metrics = configuration.metricsAddress != nil ? DaemonMetrics() : nil
        let loops = configuration.eventLoops > 0 ? configuration.eventLoops : System.coreCount
        group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
        threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
        state = ServerState(
            configuration: configuration, vocabulary: vocabulary, policies: PolicyHolder(set, at: .now(), milliseconds: loaded.milliseconds),
            feed: feed, ownUID: UInt32(getuid()), metrics: metrics, receipts: receiptQueue, logger: logger
        )
        listener = SocketListener(state: state, group: group, threadPool: threadPool)
        reloader = PolicyReloader(
            settings: .init(loader: loader, pollInterval: configuration.policyPollInterval),
            policies: state.policies, vocabulary: vocabulary, counters: state.counters, logger: logger, files: loaded.files,
            loadedSignature: loadedSignature
        )
        follower = ConsentFollower(feed: feed, interval: configuration.effectiveStorePollInterval, logger: logger)
        self.receiptWriter = receiptWriter
        if let metrics, let text = configuration.metricsAddress, let address = MetricsAddress(text) {
            metricsServer = MetricsServer(state: state, metrics: metrics, address: address, group: group)
        } else {
            metricsServer = nil
        }
        let snapshot = feed.index.snapshot()
        logger.info("ready", metadata: [
            "policies": "\(configuration.policies)", "revision": "\(set.revision)", "rules": "\(set.rules.count)",
            "store": "\(store.location)", "subjects": "\(snapshot.subjectCount)", "records": "\(snapshot.recordCount)",
            "sequence": "\(snapshot.sequence)", "event_loops": "\(loops)",
        ])
    }

    /// The services, in start order; a graceful shutdown stops them in reverse, so the receipts
    /// writer stops last, after the listener has answered everything it read.
    public var services: [any Service] {
        var services: [any Service] = []
        if let receiptWriter { services.append(receiptWriter) }
        services += [listener, reloader, follower] as [any Service]
        if let metricsServer { services.append(metricsServer) }
        return services
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    public func run() async throws {
        let group = makeServiceGroup(signals: [.sigterm, .sigint])
        defer { shutdownResources() }
        try await group.run()
    }

    /// The services in a group that shuts down gracefully on `signals` (none for embedding and
    /// tests, which call `triggerGracefulShutdown()` on the group).
    public func makeServiceGroup(signals: [UnixSignal]) -> ServiceGroup {
        ServiceGroup(services: services, gracefulShutdownSignals: signals, logger: state.logger)
    }

    /// Stops the event loops and the blocking pool (after `run` returns).
    public func shutdownResources() {
        try? threadPool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
    }
}
