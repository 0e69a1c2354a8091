import ConsentModel
import Foundation
import PolicyEngine
import Synchronization

/// The serving policy set and the outcome of the last reload, swapped whole.
///
/// Like the consent index: readers keep a `PolicyReader` that re-reads only when the atomic
/// version moved, so a decision takes no lock; a reload replaces the set in one step, and no
/// request ever sees half of one.
public final class PolicyHolder: Sendable {
    /// What Status reports about policies.
    public struct State: Sendable {
        /// The set serving now.
        public var set: PolicySet
        /// When it was loaded.
        public var loadedAt: Timestamp
        /// Diagnostics of the last failed reload; empty once a reload succeeds.
        public var lastErrors: [Diagnostic]
        /// Milliseconds the last successful load took (read + compile + swap).
        public var loadMilliseconds: Double = 0
    }

    private let state: Mutex<State>
    private let versionCounter = Atomic<UInt64>(0)

    init(_ set: PolicySet, at instant: Timestamp, milliseconds: Double) {
        state = Mutex(State(set: set, loadedAt: instant, lastErrors: [], loadMilliseconds: milliseconds))
    }

    /// The current state.
    public var current: State { state.withLock { $0 } }

    /// The serving set.
    public var set: PolicySet { state.withLock { $0.set } }

    var version: UInt64 { versionCounter.load(ordering: .acquiring) }

    /// Installs a new set (a successful reload).
    func install(_ set: PolicySet, at instant: Timestamp, milliseconds: Double) {
        state.withLock { $0 = State(set: set, loadedAt: instant, lastErrors: [], loadMilliseconds: milliseconds) }
        versionCounter.add(1, ordering: .releasing)
    }

    /// Records a failed reload; the serving set stays.
    func recordFailure(_ diagnostics: [Diagnostic]) {
        state.withLock {
            $0.lastErrors = diagnostics
        }
    }
}

/// A per-connection cache of the serving set, refreshed only when a reload happened.
struct PolicyReader {
    let holder: PolicyHolder
    private var cached: PolicySet
    private var cachedVersion: UInt64

    init(_ holder: PolicyHolder) {
        self.holder = holder
        cachedVersion = holder.version
        cached = holder.set
    }

    @inline(__always)
    mutating func current() -> PolicySet {
        let version = holder.version
        if version != cachedVersion {
            cached = holder.set
            cachedVersion = version
        }
        return cached
    }
}
