import ConsentModel
@testable import ConsentStore
import ConsentWorkload
import Testing

@Suite struct ConsentIndexTests {
    static func record(_ sequence: UInt64, purpose: UInt32 = 1, choice: Choice = .grant) -> CompactRecord {
        CompactRecord(purpose: purpose, choice: choice, recordedAt: Timestamp(seconds: Int64(sequence)), sequence: sequence)
    }

    @Test(arguments: [0, 1, 7, 1000, 20_000])
    func lookupsReturnExactlyEachSubjectsRecordsInOrder(subjects: Int) {
        var rng = SplitMix64(seed: UInt64(subjects) + 1)
        var expected: [String: [CompactRecord]] = [:]
        var builder = ConsentSnapshotBuilder()
        var sequence: UInt64 = 0
        // Interleave subjects so the builder's grouping (not just its fast path) is exercised.
        var pending: [(String, CompactRecord)] = []
        for index in 0..<subjects {
            // Ids of every length from 1 to 70 bytes, some multi-byte UTF-8.
            let id = String(repeating: index % 3 == 0 ? "é" : "s", count: index % 35 + 1) + "\(index)"
            for _ in 0..<Int(rng.next() % 5 + 1) {
                sequence += 1
                let record = Self.record(sequence, purpose: UInt32(rng.next() % 50))
                pending.append((id, record))
                expected[id, default: []].append(record)
            }
        }
        var shuffledByBlock: [(String, CompactRecord)] = []
        var blocks = stride(from: 0, to: pending.count, by: 3).map { Array(pending[$0..<min($0 + 3, pending.count)]) }
        blocks.shuffle(using: &rng)
        // Keep each subject's own records in order: stable-sort by sequence within a subject.
        var seen: [String: Int] = [:]
        for block in blocks { shuffledByBlock += block }
        var perSubject: [String: [CompactRecord]] = [:]
        for (id, record) in shuffledByBlock { perSubject[id, default: []].append(record) }
        for (id, records) in shuffledByBlock.map({ ($0.0, perSubject[$0.0]!) }) where seen[id] == nil {
            seen[id] = 1
            for record in records.sorted(by: { $0.sequence < $1.sequence }) { builder.add(subject: id, record) }
        }
        let snapshot = builder.build()
        #expect(snapshot.subjectCount == subjects)
        #expect(snapshot.recordCount == Int(sequence))
        #expect(snapshot.sequence == sequence)
        for (id, records) in expected {
            #expect(Array(snapshot.records(of: id)) == records, "subject \(id)")
            let viaBytes = Array(id.utf8).withUnsafeBytes { bytes in snapshot.withRecords(ofSubjectBytes: bytes) { Array($0) } }
            #expect(viaBytes == records, "subject \(id) by bytes")
        }
        #expect(Array("nobody".utf8).withUnsafeBytes { bytes in snapshot.withRecords(ofSubjectBytes: bytes) { $0.count } } == 0)
        #expect(snapshot.records(of: "nobody").isEmpty)
        #expect(snapshot.records(of: "").isEmpty)
        if let some = expected.keys.first {
            #expect(snapshot.records(of: some + "x").isEmpty)
            #expect(snapshot.records(of: String(some.dropLast())).isEmpty || expected[String(some.dropLast())] != nil)
        }
    }

    @Test func subjectsInterleavedRecordByRecordKeepTheirOrder() {
        var builder = ConsentSnapshotBuilder()
        for sequence in 1...12 as ClosedRange<UInt64> {
            builder.add(subject: sequence % 2 == 0 ? "even" : "odd", Self.record(sequence))
        }
        let snapshot = builder.build()
        #expect(snapshot.records(of: "even").map(\.sequence) == [2, 4, 6, 8, 10, 12])
        #expect(snapshot.records(of: "odd").map(\.sequence) == [1, 3, 5, 7, 9, 11])
    }

    @Test func applyingChangesPublishesANewSnapshotAndLeavesTheOldOneIntact() {
        var builder = ConsentSnapshotBuilder()
        builder.add(subject: "alice", Self.record(1))
        builder.add(subject: "bob", Self.record(2))
        let index = ConsentIndex(vocabulary: Vocabulary(), snapshot: builder.build())
        let before = index.snapshot()
        var reader = SnapshotReader(index)
        index.apply([
            .record(subject: "alice", Self.record(3, choice: .deny)),
            .record(subject: "carol", Self.record(4)),
            .erasure(subject: "bob"),
        ], through: 4)
        let after = reader.current()
        #expect(after.sequence == 4)
        #expect(after.records(of: "alice").map(\.sequence) == [1, 3])
        #expect(after.records(of: "carol").map(\.sequence) == [4])
        #expect(after.records(of: "bob").isEmpty)
        #expect(after.subjectCount == 2)
        #expect(after.recordCount == 3)
        #expect(before.records(of: "bob").map(\.sequence) == [2])
        #expect(before.records(of: "alice").map(\.sequence) == [1])
    }

    @Test func aForeignErasureFindsItsSubjectByAnyRecordSequence() {
        var builder = ConsentSnapshotBuilder()
        for (index, subject) in ["a", "b", "c"].enumerated() {
            builder.add(subject: subject, Self.record(UInt64(2 * index + 1)))
            builder.add(subject: subject, Self.record(UInt64(2 * index + 2)))
        }
        let index = ConsentIndex(vocabulary: Vocabulary(), snapshot: builder.build())
        index.apply([.erasureOf(anchorSequence: 4), .erasureOf(anchorSequence: 999)], through: 10)
        let snapshot = index.snapshot()
        #expect(snapshot.records(of: "b").isEmpty)
        #expect(snapshot.records(of: "a").count == 2)
        #expect(snapshot.records(of: "c").count == 2)
        #expect(snapshot.sequence == 10)
    }

    @Test func aReaderOnlyRefreshesWhenSomethingWasPublished() {
        let index = ConsentIndex(vocabulary: Vocabulary())
        var reader = SnapshotReader(index)
        let first = reader.current()
        #expect(reader.current() === first)
        index.apply([.record(subject: "x", Self.record(1))], through: 1)
        #expect(reader.current() !== first)
        #expect(reader.current().records(of: "x").count == 1)
    }

    @Test func manyRecordsForOneSubjectAreKept() {
        let index = ConsentIndex(vocabulary: Vocabulary())
        index.apply((1...70_000).map { .record(subject: "busy", Self.record(UInt64($0))) }, through: 70_000)
        #expect(index.snapshot().records(of: "busy").count == 70_000)
    }
}
