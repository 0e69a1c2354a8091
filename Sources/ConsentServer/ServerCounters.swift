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

    init() {}

    @inline(__always)
    static func bump(_ counter: borrowing Atomic<UInt64>, by amount: UInt64 = 1) {
        counter.add(amount, ordering: .relaxed)
    }

    var wire: Consentd_V1_Counters {
        var counters = Consentd_V1_Counters()
        counters.requests = requests.load(ordering: .relaxed)
        counters.decisions = decisions.load(ordering: .relaxed)
        counters.allowed = allowed.load(ordering: .relaxed)
        counters.denied = denied.load(ordering: .relaxed)
        counters.errors = errors.load(ordering: .relaxed)
        counters.connectionsAccepted = connectionsAccepted.load(ordering: .relaxed)
        counters.connectionsOpen = connectionsOpen.load(ordering: .relaxed)
        counters.connectionsRefused = connectionsRefused.load(ordering: .relaxed)
        counters.framesRejected = framesRejected.load(ordering: .relaxed)
        counters.reloadsOk = reloadsOK.load(ordering: .relaxed)
        counters.reloadsFailed = reloadsFailed.load(ordering: .relaxed)
        counters.permissionDenied = permissionDenied.load(ordering: .relaxed)
        counters.connectionsIdleClosed = connectionsIdleClosed.load(ordering: .relaxed)
        counters.inFlight = UInt64(max(0, inFlight.load(ordering: .relaxed)))
        return counters
    }
}
