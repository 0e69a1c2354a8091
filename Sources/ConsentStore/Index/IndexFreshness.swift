import Synchronization

/// How current an index is known to be: when its follower last confirmed it equal to the store
/// (the start of the last look that found nothing newer than what was applied), and whether
/// that is longer ago than the bound the daemon enforces. While it is, decisions that would
/// depend on consent records are denied `CONSENT_UNAVAILABLE` (fail closed); they resume as soon
/// as a look confirms the index current again.
///
/// Only a watchdog (`check`) marks the index stale, so an index nobody follows never is.
public final class IndexFreshness: Sendable {
    private let confirmed = Mutex(ContinuousClock.now)
    private let stale = Atomic<Bool>(false)

    public init() {}

    /// Whether decisions may rely on the index (one relaxed atomic load: the hot path's check).
    @inline(__always)
    public var isCurrent: Bool { !stale.load(ordering: .relaxed) }

    /// The index was equal to the store as of `instant` (a look that began then found nothing
    /// newer). Clears staleness at once when that is within `bound`.
    public func confirm(_ instant: ContinuousClock.Instant, bound: Duration) {
        let latest = confirmed.withLock { confirmed in
            if instant > confirmed { confirmed = instant }
            return confirmed
        }
        if ContinuousClock.now - latest <= bound { stale.store(false, ordering: .relaxed) }
    }

    /// How long ago the index was last confirmed current.
    public func age(now: ContinuousClock.Instant = .now) -> Duration {
        let latest = confirmed.withLock { $0 }
        return latest < now ? now - latest : .zero
    }

    /// `age()` in seconds (status, metrics, messages).
    public var ageSeconds: Double {
        let age = age()
        return Double(age.components.seconds) + Double(age.components.attoseconds) / 1e18
    }

    /// Marks the index stale when it was last confirmed longer than `bound` ago (the watchdog,
    /// a few times a second); returns whether it is.
    @discardableResult
    public func check(bound: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        let isStale = age(now: now) > bound
        stale.store(isStale, ordering: .relaxed)
        return isStale
    }
}
