import ConsentModel
import Synchronization

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
    private let mapper: KeyMapperHandle
    /// The last sequence applied; held while applying, which serialises catch-ups.
    private let cursor: Mutex<UInt64>

    /// Loads every record of `store` into a new index over `vocabulary`.
    public init(store: any ConsentStorage, vocabulary: Vocabulary) throws {
        self.store = store
        self.mapper = store.keyMapper(for: vocabulary)
        let snapshot = try store.loadSnapshot(into: mapper)
        self.index = ConsentIndex(vocabulary: vocabulary, snapshot: snapshot)
        self.cursor = Mutex(snapshot.sequence)
    }

    /// The last store sequence reflected in the index.
    public var appliedSequence: UInt64 { index.snapshot().sequence }

    /// Applies every change committed so far; returns how many were applied.
    @discardableResult
    public func catchUp() throws -> Int {
        try cursor.withLock { cursor in
            var applied = 0
            while true {
                let (changes, through) = try store.changes(after: cursor, limit: 20_000, mapper: mapper)
                guard through > cursor else { return applied }
                index.apply(changes, through: through)
                applied += changes.count
                cursor = through
            }
        }
    }

    /// Polls for other processes' commits every `interval` until the task is cancelled.
    /// Errors (a locked or unreadable file) are reported to `onError` and retried next poll.
    /// A store that refuses writes (`ConsentStorage.healthProblem`: SQLite files removed or
    /// replaced under the daemon) is reported once, when it is first seen.
    public func follow(every interval: Duration = .milliseconds(10), onError: @Sendable (Error) -> Void = { _ in }) async {
        var reportedFileProblem = false
        while !Task.isCancelled {
            if let problem = store.healthProblem() {
                if !reportedFileProblem { onError(StoreError(.unavailable, problem)) }
                reportedFileProblem = true
            } else {
                reportedFileProblem = false
            }
            do {
                if try store.lastSequence() > cursor.withLock({ $0 }) { try catchUp() }
            } catch {
                onError(error)
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Appends records durably, then updates the index; returns once both are done.
    public func record(_ records: [ConsentRecord], idempotencyKey: String? = nil, payload: [UInt8]? = nil, now: Timestamp = .now()) throws -> AppendResult {
        let result = try store.append(records, idempotencyKey: idempotencyKey, payload: payload, now: now)
        try catchUp()
        return result
    }

    /// Erases a subject durably, then updates the index.
    public func erase(subject: String, now: Timestamp = .now()) throws -> ErasureTombstone {
        let tombstone = try store.erase(subject: subject, now: now)
        try catchUp()
        return tombstone
    }
}
