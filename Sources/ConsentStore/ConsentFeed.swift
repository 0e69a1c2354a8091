import ConsentModel
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Keeps a `ConsentIndex` equal to the store: loads it at start-up, then applies every change
/// committed by this or any other process, in sequence order.
///
/// Writes made through the feed commit durably, then catch the index up before they return, so
/// the very next decision sees them. Changes by other processes to the same file are found by
/// polling the store's sequence counter (`follow(every:)`) and applied within one poll interval.
public final class ConsentFeed: Sendable {
    /// The durable store.
    public let store: any ConsentStorage
    /// The index decisions read.
    public let index: ConsentIndex
    /// The last sequence applied and the key mapper of the store it was read from; held while
    /// applying, which serialises catch-ups and reloads.
    private let cursor: Mutex<Cursor>
    private struct Cursor {
        var sequence: UInt64
        var mapper: KeyMapperHandle
    }
    /// Wakes the following thread early (`nudge`).
    private let wake = DispatchSemaphore(value: 0)

    /// How long the index may go without a look confirming it current before decisions that
    /// need consent fail closed (`IndexFreshness`).
    public let maximumStaleness: Duration

    /// Loads every record of `store` into a new index over `vocabulary`.
    public init(store: any ConsentStorage, vocabulary: Vocabulary, maximumStaleness: Duration = .seconds(5)) throws {
        self.store = store
        self.maximumStaleness = maximumStaleness
        let mapper = store.keyMapper(for: vocabulary)
        let started = ContinuousClock.now
        let snapshot = try store.loadSnapshot(into: mapper)
        self.index = ConsentIndex(vocabulary: vocabulary, snapshot: snapshot)
        self.cursor = Mutex(Cursor(sequence: snapshot.sequence, mapper: mapper))
        index.freshness.confirm(started, bound: maximumStaleness)
    }

    /// The last store sequence reflected in the index.
    public var appliedSequence: UInt64 { index.snapshot().sequence }

    /// Applies every change committed so far; returns how many were applied.
    /// A read that found nothing newer confirms the index current as of the read's start.
    @discardableResult
    public func catchUp() throws -> Int {
        try cursor.withLock { cursor in try catchUp(&cursor) }
    }

    /// `catchUp`, unless a catch-up or reload is under way (nil: nothing done).
    func tryCatchUp() throws -> Int? {
        try cursor.withLockIfAvailable { cursor in try catchUp(&cursor) }
    }

    private func catchUp(_ cursor: inout Cursor) throws -> Int {
        var applied = 0
        while true {
            let started = ContinuousClock.now
            let (changes, through) = try store.changes(after: cursor.sequence, limit: 20_000, mapper: cursor.mapper)
            guard through > cursor.sequence else {
                // A counter gone back is not "nothing new": the next poll loads the store
                // whole (or finds it damaged); until then the index is not confirmed.
                if through < cursor.sequence {
                    throw StoreError(.database, "the consent store's sequence counter went back from \(cursor.sequence) to \(through)")
                }
                index.freshness.confirm(started, bound: maximumStaleness)
                return applied
            }
            index.apply(changes, through: through)
            applied += changes.count
            cursor.sequence = through
        }
    }

    /// One look at the store: applies what other processes committed since the last one, and
    /// confirms the index current. A store whose counter went backwards (restored from a backup)
    /// or another store at the same address (`StoreError.Code.storeChanged`) is loaded again
    /// whole; returns why when it was, nil otherwise.
    @discardableResult
    public func poll() throws -> String? {
        let started = ContinuousClock.now
        // The cursor first: this process's own writes move it on while the head is read, and a
        // head read before such a write would look like a counter gone backwards.
        let applied = cursor.withLock { $0.sequence }
        do {
            let head = try store.lastSequence()
            if head < applied {
                try reload()
                return "the store's sequence counter went back from \(applied) to \(head) (restored from a backup?): loaded the store whole"
            } else if head > applied {
                try catchUp()
            } else {
                index.freshness.confirm(started, bound: maximumStaleness)
            }
            return nil
        } catch let error as StoreError where error.code == .storeChanged {
            try reload()
            return "\(error.message): loaded the store whole"
        }
    }

    /// How many times the whole store was loaded again since start-up (`reload`).
    public var reloads: Int { reloadCount.load(ordering: .relaxed) }
    private let reloadCount = Atomic<Int>(0)

    /// Loads the whole store again, with a fresh key mapper (another store's key ids mean other
    /// names), and publishes it (the counter went backwards, or the store was replaced).
    public func reload() throws {
        reloadCount.add(1, ordering: .relaxed)
        try cursor.withLock { cursor in
            let started = ContinuousClock.now
            let mapper = store.keyMapper(for: index.vocabulary)
            let snapshot = try store.loadSnapshot(into: mapper)
            index.publish(snapshot)
            cursor = Cursor(sequence: snapshot.sequence, mapper: mapper)
            // Writes acknowledged before are in what was just loaded, or were lost with the store
            // it replaced: decisions no longer wait for them (they would wait for ever).
            acknowledged.store(0, ordering: .releasing)
            index.freshness.confirm(started, bound: maximumStaleness)
        }
    }

    /// Polls for other processes' commits every `interval` until the task is cancelled.
    /// Errors (a locked or unreadable file, an unreachable server) are reported to `onError` and
    /// retried with a jittered backoff (up to 1 s). A store that refuses writes
    /// (`ConsentStorage.healthProblem`: SQLite files removed or replaced under the daemon) is
    /// reported once, when it is first seen.
    public func follow(every interval: Duration = .milliseconds(10), onError: @Sendable (Error) -> Void = { _ in }, onReload: @Sendable (String) -> Void = { _ in }) async {
        var state = FollowState()
        while !Task.isCancelled {
            try? await Task.sleep(for: followStep(&state, every: interval, onError, onReload))
        }
    }

    /// `follow` on the calling thread (a thread of its own: every look blocks), while `running`.
    /// `nudge` cuts the pause before the next look short. `onReload` hears why the store was
    /// loaded whole when it was.
    public func followBlocking(every interval: Duration, while running: () -> Bool, onError: (Error) -> Void, onReload: (String) -> Void = { _ in }) {
        var state = FollowState()
        while running() {
            let pause = followStep(&state, every: interval, onError, onReload)
            let (seconds, attoseconds) = pause.components
            _ = wake.wait(timeout: .now() + .nanoseconds(Int(clamping: seconds * 1_000_000_000 + attoseconds / 1_000_000_000)))
            nudged.store(false, ordering: .releasing)
        }
    }

    /// Asks `followBlocking` to look now (a request waits for a sequence it has not applied, a
    /// NOTIFY arrived). Repeated nudges before that look collapse into one.
    public func nudge() {
        if !nudged.exchange(true, ordering: .acquiringAndReleasing) { wake.signal() }
    }
    private let nudged = Atomic<Bool>(false)

    private struct FollowState {
        var reportedProblem = false
        var failures = 0
    }

    /// One look; returns how long to wait before the next.
    private func followStep(_ state: inout FollowState, every interval: Duration, _ onError: (Error) -> Void, _ onReload: (String) -> Void) -> Duration {
        if let problem = store.healthProblem() {
            if !state.reportedProblem { onError(StoreError(.unavailable, problem)) }
            state.reportedProblem = true
        } else {
            state.reportedProblem = false
        }
        do {
            if let reloaded = try poll() { onReload(reloaded) }
            state.failures = 0
            return interval
        } catch {
            onError(error)
            state.failures += 1
            // Jittered exponential backoff from the interval up to 1 s.
            let base = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
            let ceiling = min(base * Double(1 << min(state.failures, 10)), 1.0)
            return .milliseconds(Int64(Double.random(in: ceiling / 2...ceiling) * 1000))
        }
    }

    /// The highest sequence a write through this feed committed (`record`, `erase`): decisions
    /// wait for the index to hold it, so the next one sees the write even when the index update
    /// right after the commit failed.
    public var acknowledgedSequence: UInt64 { acknowledged.load(ordering: .acquiring) }
    private let acknowledged = Atomic<UInt64>(0)

    /// Appends records durably, then updates the index; returns once both are done. A write
    /// that committed is reported as such even if the index update after it fails (the follower
    /// retries it; `acknowledgedSequence` holds decisions until it is applied).
    public func record(_ records: [ConsentRecord], idempotencyKey: String? = nil, payload: [UInt8]? = nil, now: Timestamp = .now()) throws -> AppendResult {
        try StoreDeadline.within(Self.writeDeadline) {
            let result = try nudgingOnStoreChange { try store.append(records, idempotencyKey: idempotencyKey, payload: payload, now: now) }
            committed(result.sequences.max() ?? 0)
            return result
        }
    }

    /// Erases a subject durably, then updates the index (as `record`).
    public func erase(subject: String, now: Timestamp = .now()) throws -> ErasureTombstone {
        try StoreDeadline.within(Self.writeDeadline) {
            let tombstone = try nudgingOnStoreChange { try store.erase(subject: subject, now: now) }
            committed(tombstone.sequence)
            return tombstone
        }
    }

    /// A write through the feed is answered within about this long, whatever the store does: it
    /// waits for the connection, connects, writes and applies the write to the index under this
    /// one deadline (`StoreDeadline`), each step begun only with time left for a statement's
    /// whole bound (7 s); past it the write fails `unavailable` with nothing sent (retry with the
    /// same idempotency key), or, once committed, is acknowledged and applied by the follower.
    /// Clients should wait longer than this (`consentctl` waits 30 s).
    public static let writeDeadline: Duration = .seconds(12)

    /// Runs a write; one refused because the store was replaced asks the follower to look now
    /// (and load the new store whole), so the caller's retry finds it.
    private func nudgingOnStoreChange<T>(_ write: () throws -> T) throws -> T {
        do {
            return try write()
        } catch let error as StoreError where error.code == .storeChanged {
            nudge()
            throw error
        }
    }

    /// A write through this feed committed `sequence`: apply it now; if that fails, hold later
    /// decisions until the follower has (before the write is acknowledged to its caller).
    /// Waits for a look the follower has under way at most a second (a look at a healthy store
    /// takes well under a millisecond; one at a store in trouble can take seconds): past that,
    /// the follower applies the write instead.
    private func committed(_ sequence: UInt64) {
        do {
            let giveUp = ContinuousClock.now + .seconds(1)
            while try tryCatchUp() == nil {
                guard ContinuousClock.now < giveUp else {
                    holdDecisions(until: sequence)
                    nudge()
                    return
                }
                usleep(200)
            }
        } catch {
            holdDecisions(until: sequence)
            nudge()
        }
    }

    /// Decisions wait until the index holds `sequence` (a write acknowledged without it applied).
    func holdDecisions(until sequence: UInt64) {
        var current = acknowledged.load(ordering: .relaxed)
        while sequence > current {
            let (exchanged, original) = acknowledged.compareExchange(expected: current, desired: sequence, ordering: .acquiringAndReleasing)
            if exchanged { break }
            current = original
        }
    }
}
