import ConsentModel
import ConsentWire
import CoreMetrics
import PolicyEngine
import Prometheus
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's Prometheus metrics, made through the swift-metrics API on a registry of this
/// daemon's own (no process-global bootstrap, so several daemons can live in one process).
///
/// On the hot path: one counter per (decision, reason) and the request latency histogram, both
/// touched only when metrics are on. Everything the daemon already counts for Status (connections,
/// rejected frames, reloads, receipts) is read from those relaxed atomics when a scrape comes,
/// and the swift-metrics counters are advanced by the difference, so the event loops pay nothing
/// extra for them.
public final class DaemonMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory

    /// `consentd_decisions_total{decision, reason}`, indexed by `ReasonCode.rawValue`.
    private let decisions: [CoreMetrics.Counter]
    /// `consentd_request_duration_seconds`: from a frame's arrival at the handler to its answer
    /// being encoded (decode + decide + encode; consent writes until their answer is ready).
    private let latency: CoreMetrics.Timer
    /// `consentd_requests_refused_total{code}`, indexed by error code.
    private let refused: [Int: CoreMetrics.Counter]

    private struct Synced {
        var last: [UInt64] = []
        var revision: (String, CoreMetrics.Gauge)?
    }
    private let synced = Mutex(Synced())
    /// Counters advanced at scrape time from the daemon's own atomics; `last` holds what each had reached.
    private let counters: [(counter: CoreMetrics.Counter, read: @Sendable (ServerState) -> UInt64)]
    private let gauges: [(name: String, gauge: CoreMetrics.Gauge, read: @Sendable (ServerState) -> Double)]

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Decisions take microseconds; the default buckets start at 5 ms.
        factory.durationHistogramBuckets["consentd_request_duration_seconds"] = [
            .microseconds(2), .microseconds(5), .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100),
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
        ]
        self.factory = factory
        var decisions: [CoreMetrics.Counter] = []
        for raw in 0...UInt8(ReasonCode.allCases.map(\.rawValue).max()!) {
            let reason = ReasonCode(rawValue: raw)
            let dimensions = reason.map { [("decision", $0.isAllow ? "allow" : "deny"), ("reason", $0.description)] } ?? [("decision", "deny"), ("reason", "UNSPECIFIED")]
            decisions.append(CoreMetrics.Counter(label: "consentd_decisions_total", dimensions: dimensions, factory: factory))
        }
        self.decisions = decisions
        latency = CoreMetrics.Timer(label: "consentd_request_duration_seconds", dimensions: [], factory: factory)
        var refused: [Int: CoreMetrics.Counter] = [:]
        for code in Consentd_V1_ErrorCode.allCases where code != .unspecified {
            if case .UNRECOGNIZED = code { continue }
            refused[code.rawValue] = CoreMetrics.Counter(label: "consentd_requests_refused_total", dimensions: [("code", DaemonMetrics.name(of: code))], factory: factory)
        }
        self.refused = refused

        // The daemon's own counters, from the one table Status is built from too.
        var c: [(String, [(String, String)], @Sendable (ServerState) -> UInt64)] = []
        var g: [(String, @Sendable (ServerState) -> Double)] = []
        for row in ServerCounters.table {
            let read = row.read
            switch row.series {
            case let .counter(name, dimensions)?: c.append((name, dimensions, { read($0.counters) }))
            case let .gauge(name)?: g.append((name, { Double(read($0.counters)) }))
            case nil: break
            }
        }
        let written: @Sendable (ServerState) -> UInt64 = { $0.receipts?.writtenCount ?? 0 }
        let dropped: @Sendable (ServerState) -> UInt64 = { $0.receipts?.droppedCount ?? 0 }
        c.append(("consentd_receipts_written_total", [], written))
        c.append(("consentd_receipts_dropped_total", [], dropped))
        counters = c.map { (counter: CoreMetrics.Counter(label: $0.0, dimensions: $0.1, factory: factory), read: $0.2) }
        let stateGauges: [(String, @Sendable (ServerState) -> Double)] = [
            ("consentd_consent_index_subjects", { Double($0.feed.index.snapshot().subjectCount) }),
            ("consentd_consent_index_records", { Double($0.feed.index.snapshot().recordCount) }),
            ("consentd_consent_sequence", { Double($0.feed.index.snapshot().sequence) }),
            // Seconds since a look at the store last confirmed the index current (decisions that
            // need consent are denied while it exceeds --max-staleness).
            ("consentd_consent_staleness_seconds", { $0.feed.index.freshness.ageSeconds }),
            ("consentd_consent_stale", { $0.feed.index.freshness.isCurrent ? 0 : 1 }),
            ("consentd_policy_rules", { Double($0.policies.set.rules.count) }),
            ("consentd_policy_last_load_seconds", { $0.policies.current.loadMilliseconds / 1000 }),
            ("consentd_receipts_queued", { Double($0.receipts?.queued ?? 0) }),
        ]
        g += stateGauges
        gauges = g.map { (name: $0.0, gauge: CoreMetrics.Gauge(label: $0.0, dimensions: [], factory: factory), read: $0.1) }
    }

    static func name(of code: Consentd_V1_ErrorCode) -> String {
        switch code {
        case .malformedFrame: "malformed_frame"
        case .frameTooLarge: "frame_too_large"
        case .unknownMethod: "unknown_method"
        case .unknownField: "unknown_field"
        case .invalidArgument: "invalid_argument"
        case .permissionDenied: "permission_denied"
        case .unavailable: "unavailable"
        case .internal: "internal"
        case .resourceExhausted: "resource_exhausted"
        case .shuttingDown: "shutting_down"
        default: "other"
        }
    }

    @inline(__always)
    func count(_ decision: Decision) {
        decisions[Int(decision.reason.rawValue)].increment()
    }

    func refusedRequest(_ code: Consentd_V1_ErrorCode) {
        refused[code.rawValue]?.increment()
    }

    @inline(__always)
    func recordLatency(nanoseconds: Int64) {
        latency.recordNanoseconds(nanoseconds)
    }

    /// Monotonic nanoseconds, for latency.
    @inline(__always)
    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// The Prometheus text exposition of everything, after bringing the counters read from the
    /// daemon's atomics up to date.
    public func scrape(_ state: ServerState) -> [UInt8] {
        synced.withLock { synced in
            if synced.last.isEmpty { synced.last = Array(repeating: 0, count: counters.count) }
            for (index, entry) in counters.enumerated() {
                let value = entry.read(state)
                if value > synced.last[index] {
                    entry.counter.increment(by: Int64(value - synced.last[index]))
                    synced.last[index] = value
                }
            }
            for entry in gauges { entry.gauge.record(entry.read(state)) }
            let revision = state.policies.set.revision
            if synced.revision?.0 != revision {
                synced.revision?.1.destroy()
                let gauge = CoreMetrics.Gauge(label: "consentd_policy_revision_info", dimensions: [("revision", revision)], factory: factory)
                gauge.record(1)
                synced.revision = (revision, gauge)
            }
        }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
