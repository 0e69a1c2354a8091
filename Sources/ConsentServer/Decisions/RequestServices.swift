import ConsentReceipts
import ConsentStore
import ConsentWire
import Logging

/// What a connection's `RequestProcessor` uses, handed to it by the daemon that assembled it
/// (no service locator): decisions read `policies` and `consent`; consent administration goes
/// through `store` on the blocking pool. A processor over a compiled set and an index built in
/// memory needs no SQLite file and no socket (see RequestProcessorTests).
package struct RequestServices: Sendable {
    /// The serving policy set.
    package var policies: PolicyHolder
    /// The in-memory consent index decisions read.
    package var consent: ConsentIndex
    /// The durable store behind RecordConsent, History and EraseSubject (nil: they are refused
    /// as unavailable).
    package var store: ConsentFeed?
    /// Counters for Status and metrics.
    package var counters: ServerCounters
    /// The Prometheus metrics, when on.
    package var metrics: DaemonMetrics?
    /// The receipt queue, when receipts are on.
    package var receipts: ReceiptQueue?
    /// Who may do what.
    package var roleMap: RoleMap
    /// Most items in one CheckBatch.
    package var maximumBatchItems: Int
    /// How long a request naming a `min_sequence` this daemon has not applied waits for it (seconds).
    package var maximumSequenceWait: Double = 0.1
    /// The requests waiting for a sequence, per event loop: one for the daemon, shared by every
    /// connection's services.
    package let sequenceWaits: SequenceWaits
    /// The daemon's status for Status (the processor adds the caller's roles).
    package var status: @Sendable () -> Consentd_V1_StatusResponse
    package var logger: Logger

    package init(
        policies: PolicyHolder, consent: ConsentIndex, store: ConsentFeed?, counters: ServerCounters = ServerCounters(),
        metrics: DaemonMetrics? = nil, receipts: ReceiptQueue? = nil, roleMap: RoleMap, maximumBatchItems: Int,
        status: @escaping @Sendable () -> Consentd_V1_StatusResponse, logger: Logger, sequenceWaits: SequenceWaits? = nil
    ) {
        self.policies = policies
        self.consent = consent
        self.store = store
        self.counters = counters
        self.metrics = metrics
        self.receipts = receipts
        self.roleMap = roleMap
        self.maximumBatchItems = maximumBatchItems
        self.status = status
        self.logger = logger
        self.sequenceWaits = sequenceWaits ?? SequenceWaits(index: consent)
    }
}
