import ConsentModel
import ConsentReceipts
import ConsentStore
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
        self.startedAt = .now()
        self.ownUID = ownUID
        self.logger = logger
    }

    /// What a peer may do, from its SO_PEERCRED credentials (nil: unknown, which may check only
    /// when every peer may).
    func roles(of peer: PeerCredentials?) -> PeerRoles {
        let c = configuration
        let admin: Bool
        if c.allowAnyAdmin {
            admin = true
        } else if let peer {
            admin = peer.uid == ownUID || peer.uid == 0 || c.adminUIDs.contains(peer.uid) || c.adminGIDs.contains(peer.gid)
        } else {
            admin = false
        }
        let everyoneChecks = c.checkUIDs.isEmpty && c.checkGIDs.isEmpty
        let check = admin || everyoneChecks || peer.map { c.checkUIDs.contains($0.uid) || c.checkGIDs.contains($0.gid) } ?? false
        return PeerRoles(check: check, admin: admin)
    }
}

/// The roles of one peer.
public struct PeerRoles: Sendable, Equatable {
    /// Check, CheckBatch, ListUses, Status.
    public var check: Bool
    /// RecordConsent, History, EraseSubject (and everything `check` allows).
    public var admin: Bool

    /// Role names, for Status.
    public var names: [String] { (check ? ["check"] : []) + (admin ? ["admin"] : []) }
}
