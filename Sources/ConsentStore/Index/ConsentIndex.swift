import ConsentModel
import Synchronization

/// The in-memory consent index: the current `ConsentSnapshot`, replaced whole by writers.
///
/// Readers call `snapshot()` (a lock held for a pointer copy) or keep a `SnapshotReader`,
/// which re-reads only when the atomic version moved — no lock at all on the hot path.
/// Writers are serialised by the caller (the store's change follower) and never stop readers.
public final class ConsentIndex: Sendable {
    private let current: Mutex<ConsentSnapshot>
    private let versionCounter = Atomic<UInt64>(0)
    /// The vocabulary compact records are interned in.
    public let vocabulary: Vocabulary
    /// How current the index is known to be (its follower confirms it; a watchdog marks it stale).
    public let freshness = IndexFreshness()

    /// Creates an index holding `snapshot`.
    public init(vocabulary: Vocabulary, snapshot: ConsentSnapshot = .empty) {
        self.vocabulary = vocabulary
        self.current = Mutex(snapshot)
    }

    /// The current snapshot.
    public func snapshot() -> ConsentSnapshot { current.withLock { $0 } }

    /// Increases on every publish; `SnapshotReader` compares it to skip the lock.
    public var version: UInt64 { versionCounter.load(ordering: .acquiring) }

    /// Replaces the snapshot.
    public func publish(_ snapshot: ConsentSnapshot) {
        current.withLock { $0 = snapshot }
        versionCounter.add(1, ordering: .releasing)
    }

    /// Applies changes (in store order) on top of the current snapshot and publishes the result.
    public func apply(_ changes: [ConsentChange], through sequence: UInt64) {
        let base = snapshot()
        guard !changes.isEmpty else {
            if sequence > base.sequence {
                publish(ConsentSnapshot(shards: base.shards, sequence: sequence, subjectCount: base.subjectCount, recordCount: base.recordCount))
            }
            return
        }
        // Keyed by bytes: two subjects are one only if their ids are byte-equal (NFC and NFD
        // spellings of one name are two customers, as in the store).
        var touched: [ExactString: [CompactRecord]] = [:]
        for change in changes {
            switch change {
            case let .record(subject, record):
                let key = ExactString(subject)
                if touched[key] == nil { touched[key] = Array(base.records(of: subject)) }
                touched[key]!.append(record)
            case let .erasure(subject):
                touched[ExactString(subject)] = []
            case let .erasureOf(anchorSequence):
                // Another process erased a subject; find it by one of its record sequences.
                if let subject = touched.first(where: { $0.value.contains { $0.sequence == anchorSequence } })?.key ?? base.subject(holding: anchorSequence).map(ExactString.init) {
                    touched[subject] = []
                }
            }
        }
        publish(base.replacing(touched, sequence: max(sequence, base.sequence)))
    }
}

/// One change to apply to the index, in store order.
public enum ConsentChange: Sendable {
    /// A newly stored record of `subject`.
    case record(subject: String, CompactRecord)
    /// The subject was erased (known subject: this process made the erasure).
    case erasure(subject: String)
    /// A subject was erased by another process; `anchorSequence` is one of its records.
    case erasureOf(anchorSequence: UInt64)
}

/// A per-thread cache of the index's snapshot: the hot path reads it without taking a lock,
/// refreshing only when a writer has published since.
public struct SnapshotReader {
    private let index: ConsentIndex
    private var cached: ConsentSnapshot
    private var cachedVersion: UInt64

    /// Creates a reader on `index`.
    public init(_ index: ConsentIndex) {
        self.index = index
        self.cachedVersion = index.version
        self.cached = index.snapshot()
    }

    /// The latest published snapshot.
    @inline(__always)
    public mutating func current() -> ConsentSnapshot {
        let version = index.version
        if version != cachedVersion {
            cached = index.snapshot()
            cachedVersion = version
        }
        return cached
    }
}

extension ConsentSnapshot {
    /// The subject that holds a record with this sequence (a scan; for foreign erasures only).
    func subject(holding sequence: UInt64) -> String? {
        for shard in shards where shard.subjectCount > 0 {
            for slot in shard.slots.indices where shard.slots[slot].keyLength != 0 {
                if shard.records(at: slot).contains(where: { $0.sequence == sequence }) {
                    return String(decoding: shard.key(at: slot), as: UTF8.self)
                }
            }
        }
        return nil
    }
}
