import Dispatch
import ConsentModel

/// An immutable view of every subject's current consent records, as of one store sequence.
///
/// Subjects are spread over a fixed number of shards by hash; a write replaces only the shards
/// it touches, so publishing a new snapshot costs one shard rebuild, not a copy of everything.
public final class ConsentSnapshot: Sendable {
    /// Number of shards; a power of two.
    public static let shardCount = 4096
    static let shardBits = 12

    let shards: [SubjectShard]
    /// The store sequence this snapshot reflects: every change up to it is applied.
    public let sequence: UInt64
    /// Subjects with at least one record.
    public let subjectCount: Int
    /// Records held.
    public let recordCount: Int

    /// Per shard: raw views of its immutable buffers, so that a lookup goes straight from this
    /// array to the slot and the entry (no hop through the shard object, no reference counting).
    let views: [SubjectShard.View]

    init(shards: [SubjectShard], sequence: UInt64, subjectCount: Int, recordCount: Int) {
        self.shards = shards
        self.views = shards.map(\.view)
        self.sequence = sequence
        self.subjectCount = subjectCount
        self.recordCount = recordCount
    }

    /// An empty snapshot at sequence 0.
    public static let empty = ConsentSnapshot(
        shards: Array(repeating: SubjectShard.empty, count: shardCount), sequence: 0, subjectCount: 0, recordCount: 0
    )

    @inline(__always)
    static func shardIndex(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash >> UInt64(64 - shardBits)) }

    /// The subject's records in the order they were stored (empty when there are none).
    /// Allocation-free: the slice shares the shard's storage.
    @inline(__always)
    public func records(of subject: String) -> ArraySlice<CompactRecord> {
        ByteHash.withBytes(subject) { bytes in
            let hash = ByteHash.hash(bytes)
            let shard = shards[ConsentSnapshot.shardIndex(hash)]
            guard let slot = shard.find(bytes, hash: hash) else { return [] }
            return shard.records(at: slot)
        }
    }

    /// The records of the subject whose id is given as UTF-8 bytes (allocation-free).
    @inline(__always)
    public func records(ofSubjectBytes bytes: UnsafeRawBufferPointer) -> ArraySlice<CompactRecord> {
        let hash = ByteHash.hash(bytes)
        let shard = shards[ConsentSnapshot.shardIndex(hash)]
        guard let slot = shard.find(bytes, hash: hash) else { return [] }
        return shard.records(at: slot)
    }

    /// Calls `body` with the records of the subject whose id is given as UTF-8 bytes, as a buffer
    /// valid only inside `body` (the snapshot keeps it alive). Allocation- and retain-free.
    @inline(__always)
    public func withRecords<T>(ofSubjectBytes bytes: UnsafeRawBufferPointer, _ body: (UnsafeBufferPointer<CompactRecord>) throws -> T) rethrows -> T {
        let hash = ByteHash.hash(bytes)
        let records = views.withUnsafeBufferPointer { $0[ConsentSnapshot.shardIndex(hash)].records(of: bytes, hash: hash) }
        return try withExtendedLifetime(self) { try body(records) }
    }

    /// Approximate resident bytes of the index's buffers (shard tables, id arena, records).
    public var residentBytes: Int {
        var seen = Set<ObjectIdentifier>()
        var total = shards.capacity * MemoryLayout<SubjectShard>.stride
        for shard in shards where seen.insert(ObjectIdentifier(shard)).inserted {
            total += shard.residentBytes + 48
        }
        return total
    }

    /// A new snapshot with the given subjects' record lists replaced (an empty list removes the subject).
    func replacing(_ changes: [ExactString: [CompactRecord]], sequence: UInt64) -> ConsentSnapshot {
        var byShard: [Int: [(key: [UInt8], hash: UInt64, records: [CompactRecord])]] = [:]
        for (subject, records) in changes {
            let key = Array(subject.value.utf8)
            let hash = key.withUnsafeBytes { ByteHash.hash($0) }
            byShard[ConsentSnapshot.shardIndex(hash), default: []].append((key, hash, records))
        }
        var shards = self.shards
        var subjects = subjectCount
        var recordTotal = recordCount
        for (index, changed) in byShard {
            let old = shards[index]
            var entries = old.entries()
            var position: [ArraySlice<UInt8>: Int] = [:]
            for (offset, entry) in entries.enumerated() { position[entry.key] = offset }
            for change in changed {
                let key = change.key[...]
                if let existing = position[key] {
                    recordTotal -= entries[existing].records.count
                    if entries[existing].records.isEmpty == false && change.records.isEmpty { subjects -= 1 }
                    entries[existing].records = change.records[...]
                } else if !change.records.isEmpty {
                    subjects += 1
                    position[key] = entries.count
                    entries.append((key, change.hash, change.records[...]))
                }
                recordTotal += change.records.count
            }
            shards[index] = SubjectShard(entries: entries)
        }
        return ConsentSnapshot(shards: shards, sequence: sequence, subjectCount: subjects, recordCount: recordTotal)
    }
}

/// Builds a snapshot from a stream of records, for start-up loading and synthetic populations.
/// Records of one subject may arrive interleaved with other subjects', but each subject's own
/// records must arrive in store order. Input grouped by subject (as the store reads it) takes
/// a fast path; nothing is allocated per subject until the shards are built.
public struct ConsentSnapshotBuilder {
    struct Run {
        var keyOffset: Int
        var keyLength: Int
        var hash: UInt64
        var recordStart: Int
        var count: Int
    }
    private var keys: [[UInt8]]
    private var runs: [[Run]]
    private var records: [[CompactRecord]]
    private var lastShard = -1
    private var sequence: UInt64 = 0
    private var recordCount = 0

    /// Creates an empty builder.
    public init() {
        keys = Array(repeating: [], count: ConsentSnapshot.shardCount)
        runs = Array(repeating: [], count: ConsentSnapshot.shardCount)
        records = Array(repeating: [], count: ConsentSnapshot.shardCount)
    }

    /// Adds one record of `subject` (given as UTF-8 bytes).
    public mutating func add(subject: UnsafeRawBufferPointer, _ record: CompactRecord) {
        sequence = max(sequence, record.sequence)
        recordCount += 1
        if lastShard >= 0, let last = runs[lastShard].last, last.keyLength == subject.count,
           keys[lastShard].withUnsafeBytes({ subject.elementsEqual($0[last.keyOffset..<last.keyOffset + last.keyLength]) }) {
            records[lastShard].append(record)
            runs[lastShard][runs[lastShard].count - 1].count += 1
            return
        }
        let hash = ByteHash.hash(subject)
        let shard = ConsentSnapshot.shardIndex(hash)
        runs[shard].append(Run(keyOffset: keys[shard].count, keyLength: subject.count, hash: hash, recordStart: records[shard].count, count: 1))
        keys[shard].append(contentsOf: subject)
        records[shard].append(record)
        lastShard = shard
    }

    /// Adds one record of `subject`.
    public mutating func add(subject: String, _ record: CompactRecord) {
        ByteHash.withBytes(subject) { add(subject: $0, record) }
    }

    /// Declares that every change up to `sequence` is included (records alone may end earlier,
    /// e.g. when the last changes were erasures).
    public mutating func covers(through sequence: UInt64) {
        self.sequence = max(self.sequence, sequence)
    }

    /// The finished snapshot. Shards are built on `threads` threads (they are independent).
    public consuming func build(threads: Int = 2) -> ConsentSnapshot {
        let count = ConsentSnapshot.shardCount
        var shards = [SubjectShard](repeating: .empty, count: count)
        var subjectCounts = [Int](repeating: 0, count: count)
        let workers = max(1, min(threads, 16))
        keys.withUnsafeMutableBufferPointer { keys in
            runs.withUnsafeMutableBufferPointer { runs in
                records.withUnsafeMutableBufferPointer { records in
                    shards.withUnsafeMutableBufferPointer { shards in
                        subjectCounts.withUnsafeMutableBufferPointer { subjectCounts in
                            let work = ShardWork(keys: keys, runs: runs, records: records, shards: shards, subjects: subjectCounts)
                            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                                var shard = worker
                                while shard < count {
                                    work.build(shard)
                                    shard += workers
                                }
                            }
                        }
                    }
                }
            }
        }
        let subjects = subjectCounts.reduce(0, +)
        return ConsentSnapshot(shards: shards, sequence: sequence, subjectCount: subjects, recordCount: recordCount)
    }
}

/// Unsafe views of the builder's per-shard buffers, so that disjoint shards can be built on
/// several threads; each shard index is touched by exactly one worker.
private struct ShardWork: @unchecked Sendable {
    let keys: UnsafeMutableBufferPointer<[UInt8]>
    let runs: UnsafeMutableBufferPointer<[ConsentSnapshotBuilder.Run]>
    let records: UnsafeMutableBufferPointer<[CompactRecord]>
    let shards: UnsafeMutableBufferPointer<SubjectShard>
    let subjects: UnsafeMutableBufferPointer<Int>

    func build(_ shard: Int) {
        guard !runs[shard].isEmpty else { return }
        let shardKeys = keys[shard]
        let shardRecords = records[shard]
        let shardRuns = runs[shard]
        // Group runs by subject, keeping each subject's runs (and so its records) in order.
        var first: [ArraySlice<UInt8>: Int] = [:]
        var order: [[Int]] = []
        for (index, run) in shardRuns.enumerated() {
            let key = shardKeys[run.keyOffset..<run.keyOffset + run.keyLength]
            if let group = first[key] { order[group].append(index) } else {
                first[key] = order.count
                order.append([index])
            }
        }
        var entries: [(key: ArraySlice<UInt8>, hash: UInt64, records: ArraySlice<CompactRecord>)] = []
        entries.reserveCapacity(order.count)
        for group in order {
            let head = shardRuns[group[0]]
            let key = shardKeys[head.keyOffset..<head.keyOffset + head.keyLength]
            if group.count == 1 {
                entries.append((key, head.hash, shardRecords[head.recordStart..<head.recordStart + head.count]))
            } else {
                var merged: [CompactRecord] = []
                for index in group {
                    let run = shardRuns[index]
                    merged += shardRecords[run.recordStart..<run.recordStart + run.count]
                }
                entries.append((key, head.hash, merged[...]))
            }
        }
        subjects[shard] = entries.count
        shards[shard] = SubjectShard(entries: entries)
        keys[shard] = []
        runs[shard] = []
        records[shard] = []
    }
}
