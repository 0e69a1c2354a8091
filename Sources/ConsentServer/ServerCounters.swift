import ConsentWire
import Synchronization

/// The daemon's counters: relaxed atomics, bumped on the hot path, read by Status.
public final class ServerCounters: Sendable {
    let requests = Atomic<UInt64>(0)
    let decisions = Atomic<UInt64>(0)
    let allowed = Atomic<UInt64>(0)
    let denied = Atomic<UInt64>(0)
    let errors = Atomic<UInt64>(0)
    let connectionsAccepted = Atomic<UInt64>(0)
    let connectionsOpen = Atomic<UInt64>(0)
    let connectionsRefused = Atomic<UInt64>(0)
    let framesRejected = Atomic<UInt64>(0)
    let reloadsOK = Atomic<UInt64>(0)
    let reloadsFailed = Atomic<UInt64>(0)
    let permissionDenied = Atomic<UInt64>(0)
    let framesMalformed = Atomic<UInt64>(0)
    let framesTooLarge = Atomic<UInt64>(0)
    let connectionsIdleClosed = Atomic<UInt64>(0)
    /// Requests handed to the blocking pool and not answered yet.
    let inFlight = Atomic<Int>(0)

    package init() {}

    @inline(__always)
    static func bump(_ counter: borrowing Atomic<UInt64>, by amount: UInt64 = 1) {
        counter.add(amount, ordering: .relaxed)
    }

    /// Status's counters, written from `table`.
    var wire: Consentd_V1_Counters {
        var counters = Consentd_V1_Counters()
        for row in Self.table { row.status?(&counters, row.read(self)) }
        return counters
    }

    /// One row per counter: how to read it, its Status field, its Prometheus series. Status and
    /// the metrics exposition are both built from this table and from nothing else.
    struct Row: Sendable {
        enum Series: Sendable {
            case counter(String, [(String, String)])
            case gauge(String)
        }

        let read: @Sendable (ServerCounters) -> UInt64
        /// Where Status shows it (nil: metrics only).
        let status: (@Sendable (inout Consentd_V1_Counters, UInt64) -> Void)?
        /// Its Prometheus series (nil: Status only; decisions and refusals have per-reason and
        /// per-code series of their own, counted where they happen).
        let series: Series?
    }

    static let table: [Row] = [
        Row(read: { $0.requests.load(ordering: .relaxed) }, status: { $0.requests = $1 }, series: .counter("consentd_requests_total", [])),
        Row(read: { $0.decisions.load(ordering: .relaxed) }, status: { $0.decisions = $1 }, series: nil),
        Row(read: { $0.allowed.load(ordering: .relaxed) }, status: { $0.allowed = $1 }, series: nil),
        Row(read: { $0.denied.load(ordering: .relaxed) }, status: { $0.denied = $1 }, series: nil),
        Row(read: { $0.errors.load(ordering: .relaxed) }, status: { $0.errors = $1 }, series: nil),
        Row(read: { $0.permissionDenied.load(ordering: .relaxed) }, status: { $0.permissionDenied = $1 }, series: nil),
        Row(read: { $0.connectionsAccepted.load(ordering: .relaxed) }, status: { $0.connectionsAccepted = $1 },
            series: .counter("consentd_connections_accepted_total", [])),
        Row(read: { $0.connectionsOpen.load(ordering: .relaxed) }, status: { $0.connectionsOpen = $1 }, series: .gauge("consentd_connections_open")),
        Row(read: { $0.connectionsRefused.load(ordering: .relaxed) }, status: { $0.connectionsRefused = $1 },
            series: .counter("consentd_connections_refused_total", [])),
        Row(read: { $0.connectionsIdleClosed.load(ordering: .relaxed) }, status: { $0.connectionsIdleClosed = $1 },
            series: .counter("consentd_connections_idle_closed_total", [])),
        Row(read: { $0.framesRejected.load(ordering: .relaxed) }, status: { $0.framesRejected = $1 }, series: nil),
        Row(read: { $0.framesMalformed.load(ordering: .relaxed) }, status: nil, series: .counter("consentd_frames_rejected_total", [("cause", "malformed")])),
        Row(read: { $0.framesTooLarge.load(ordering: .relaxed) }, status: nil, series: .counter("consentd_frames_rejected_total", [("cause", "too_large")])),
        Row(read: { $0.reloadsOK.load(ordering: .relaxed) }, status: { $0.reloadsOk = $1 }, series: .counter("consentd_policy_reloads_total", [("result", "ok")])),
        Row(read: { $0.reloadsFailed.load(ordering: .relaxed) }, status: { $0.reloadsFailed = $1 },
            series: .counter("consentd_policy_reloads_total", [("result", "failed")])),
        Row(read: { UInt64(max(0, $0.inFlight.load(ordering: .relaxed))) }, status: { $0.inFlight = $1 }, series: .gauge("consentd_requests_in_flight")),
    ]
}
