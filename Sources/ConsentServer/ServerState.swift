import ConsentModel
import ConsentReceipts
import ConsentStore
import ConsentWire
import SwiftProtobuf
import Logging
import PolicyEngine
import Synchronization

/// What every connection and service of one daemon shares.
public final class ServerState: Sendable {
    /// The validated configuration.
    public let configuration: ServerConfiguration
    /// Keys interned once for the policy sets and the consent index alike.
    public let vocabulary: Vocabulary
    /// The serving policy set.
    public let policies: PolicyHolder
    /// The consent store and its in-memory index.
    public let feed: ConsentFeed
    /// Counters for Status and metrics.
    public let counters = ServerCounters()
    /// The Prometheus metrics, when a metrics listener is configured.
    public let metrics: DaemonMetrics?
    /// The receipt queue, when receipts are on.
    public let receipts: ReceiptQueue?
    /// When the daemon started.
    public let startedAt: Timestamp
    /// The daemon's own user id (may always administer).
    public let ownUID: UInt32
    /// Requests waiting for a store sequence, per event loop (one list for all connections).
    package let sequenceWaits: SequenceWaits
    let logger: Logger
    private let connectionSerial = Atomic<UInt64>(0)
    private let metricsBound = Mutex<String>("")

    /// Numbers connections (in decision ids).
    func nextConnectionNumber() -> UInt64 { connectionSerial.add(1, ordering: .relaxed).newValue }

    /// Where the metrics listener listens ("" when off or not yet bound).
    public var metricsAddress: String {
        get { metricsBound.withLock { $0 } }
        set { metricsBound.withLock { $0 = newValue } }
    }

    init(
        configuration: ServerConfiguration, vocabulary: Vocabulary, policies: PolicyHolder, feed: ConsentFeed, ownUID: UInt32,
        metrics: DaemonMetrics?, receipts: ReceiptQueue?, logger: Logger
    ) {
        self.metrics = metrics
        self.receipts = receipts
        self.configuration = configuration
        self.vocabulary = vocabulary
        self.policies = policies
        self.feed = feed
        self.sequenceWaits = SequenceWaits(index: feed.index)
        self.startedAt = .now()
        self.ownUID = ownUID
        self.logger = logger
    }

    /// Who may do what.
    package var roleMap: RoleMap { RoleMap(configuration: configuration, ownUID: ownUID) }

    /// What each connection's request processor is given.
    package var requestServices: RequestServices {
        var services = RequestServices(
            policies: policies, consent: feed.index, store: feed, counters: counters, metrics: metrics, receipts: receipts,
            roleMap: roleMap, maximumBatchItems: configuration.maximumBatchItems, status: { [self] in status() }, logger: logger,
            sequenceWaits: sequenceWaits
        )
        services.maximumSequenceWait = configuration.maximumSequenceWait
        return services
    }

    /// A processor for a new connection of this daemon (as the socket listener makes one).
    package func makeProcessor() -> RequestProcessor {
        RequestProcessor(services: requestServices, connection: nextConnectionNumber())
    }

    /// The daemon's status (without the caller's roles, which are the connection's).
    func status() -> Consentd_V1_StatusResponse {
        let policyState = policies.current
        let snapshot = feed.index.snapshot()
        var status = Consentd_V1_StatusResponse()
        status.version = ConsentDaemon.version
        status.policyRevision = policyState.set.revision
        status.policyLoadedAt = Google_Protobuf_Timestamp(policyState.loadedAt)
        status.policyErrors = policyState.lastErrors.map(\.wire)
        status.rules = UInt32(clamping: policyState.set.rules.count)
        status.consentSequence = snapshot.sequence
        status.subjects = UInt64(snapshot.subjectCount)
        status.records = UInt64(snapshot.recordCount)
        status.counters = counters.wire
        status.startedAt = Google_Protobuf_Timestamp(startedAt)
        status.policyDirectory = configuration.policies
        status.storePath = feed.store.location
        status.consentStalenessSeconds = feed.index.freshness.ageSeconds
        status.consentStale = !feed.index.freshness.isCurrent
        status.lastReloadMilliseconds = policyState.loadMilliseconds
        if let receipts {
            status.receiptsDirectory = receipts.configuration.directory ?? ""
            status.receiptsError = receipts.lastError
            status.receiptsQueued = UInt64(receipts.queued)
            status.counters.receiptsWritten = receipts.writtenCount
            status.counters.receiptsDropped = receipts.droppedCount
        }
        status.metricsAddress = metricsAddress
        return status
    }
}
