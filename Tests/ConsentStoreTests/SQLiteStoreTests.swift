import ConsentModel
@testable import ConsentStore
import ConsentWorkload
import Crypto
import Foundation
import GRDB
import Testing

/// A fresh store file in a temporary directory, removed afterwards.
final class TemporaryStore {
    let directory: URL
    let path: String

    init() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("consentd-store-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("consentd.sqlite").path
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func open() throws -> SQLiteConsentStore { try SQLiteConsentStore(path: path) }
}

func at(_ text: String) -> Timestamp { Timestamp(rfc3339: text)! }

func record(_ subject: String, _ purpose: String, _ choice: Choice = .grant, data: String? = nil, time: String = "2026-01-01T00:00:00Z", expires: String? = nil) -> ConsentRecord {
    ConsentRecord(subject: subject, purpose: purpose, dataCategory: data, choice: choice, recordedAt: at(time), expiresAt: expires.map(at), source: "web", noticeVersion: 2, jurisdiction: "DE", evidence: "form-17")
}

@Suite struct SQLiteStoreTests {
    /// The receipts logs a store kept as one newline-separated `store_meta` value each (before
    /// migration v3) become rows of their own, in order; appending after is one insert.
    @Test func receiptLogsMoveToRowsOfTheirOwn() throws {
        let temporary = TemporaryStore()
        let queue = try DatabaseQueue(path: temporary.path)
        try StoreSchema.migrator.migrate(queue, upTo: "v2-idempotency-payloads")
        try queue.write { db in
            try db.execute(sql: "INSERT INTO store_meta (key, value) VALUES ('receipt_retired', ?), ('receipt_breaks', ?)", arguments: ["one\ntwo\nthree", "broken"])
        }
        try queue.close()
        let store = try temporary.open()
        #expect(try store.receiptLog(.retirements) == ["one", "two", "three"])
        #expect(try store.receiptChainBreaks() == ["broken"])
        try store.appendReceiptLog(.retirements, "four\nlines")
        #expect(try store.receiptLog(.retirements) == ["one", "two", "three", "four lines"])
        #expect(try store.receiptChainBreaks() == ["broken"])
    }

    @Test func appendsGetIncreasingSequencesAndHistoryIsInSequenceOrder() throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        let first = try store.append([record("alice", "marketing"), record("bob", "analytics")])
        let second = try store.append([record("alice", "marketing.email", .deny, data: "user.contact.email", time: "2025-12-01T00:00:00Z", expires: "2027-01-01T00:00:00Z")])
        #expect(first.sequences == [1, 2])
        #expect(second.sequences == [3])
        let history = try store.history(of: "alice")
        #expect(history.map(\.sequence) == [1, 3])
        #expect(history[1].dataCategory == "user.contact.email")
        #expect(history[1].choice == .deny)
        #expect(history[1].expiresAt == at("2027-01-01T00:00:00Z"))
        #expect(history[1].recordedAt == at("2025-12-01T00:00:00Z"))
        #expect(history[0].noticeVersion == 2)
        #expect(history[0].source == "web")
        #expect(history[0].jurisdiction == "DE")
        #expect(history[0].evidence == "form-17")
        #expect(try store.lastSequence() == 3)
        #expect(try store.history(of: "nobody").isEmpty)
    }

    /// A file line that is not valid UTF-8 is refused with its line number, never decoded with
    /// replacement characters: `x\x80y` must not become the customer `x\u{FFFD}y`.
    @Test(arguments: ["jsonl", "csv"])
    func importedLinesThatAreNotUTF8AreRefused(format: String) throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        let file = temporary.path + "." + format
        var bytes: [UInt8] = []
        func line(_ subject: [UInt8]) {
            if format == "jsonl" {
                bytes += Array(#"{"subject":""#.utf8) + subject + Array(#"","purpose":"marketing","choice":"grant","at":"2026-01-01T00:00:00Z"}"#.utf8) + [10]
            } else {
                bytes += subject + Array(",marketing,grant,2026-01-01T00:00:00Z".utf8) + [10]
            }
        }
        if format == "csv" { bytes += Array("subject,purpose,choice,at\n".utf8) }
        line(Array("x".utf8) + [0x80] + Array("y".utf8))
        line(Array("x\u{FFFD}y".utf8))
        line([0xC3, 0x28])
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        var rejected: [RecordLineError] = []
        let summary = try RecordTransfer.importRecords(from: file, into: store, onReject: { rejected.append($0) })
        #expect(summary.imported == 1 && summary.rejected == 2)
        #expect(summary.lines == 3, "the summary's line count left out the refused lines")
        #expect(rejected.map(\.line) == (format == "csv" ? [2, 4] : [1, 3]))
        #expect(rejected.allSatisfy { "\($0)".contains("not valid UTF-8") }, "\(rejected)")
        #expect(try store.history(of: "x\u{FFFD}y").count == 1)
    }

    @Test func writesAndLooksOfOneProcessInterleaveWithoutReloading() throws {
        let temporary = TemporaryStore()
        try writesAndLooksInterleaveWithoutReloading(try temporary.open()) { try temporary.open() }
    }

    @Test func theSameIdempotencyKeyStoresOnceAndReturnsTheFirstResult() throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        let request = [record("alice", "marketing"), record("alice", "analytics")]
        let first = try store.append(request, idempotencyKey: "req-1")
        let again = try store.append(request, idempotencyKey: "req-1")
        let other = try store.append([record("alice", "marketing", .deny)], idempotencyKey: "req-2")
        #expect(first == AppendResult(sequences: [1, 2], replayed: false))
        #expect(again == AppendResult(sequences: [1, 2], replayed: true))
        #expect(other.sequences == [3])
        #expect(try store.history(of: "alice").count == 3)
        // The same key with another payload is refused, and says so; nothing is stored.
        #expect {
            _ = try store.append([record("alice", "marketing", .deny)], idempotencyKey: "req-1")
        } throws: { error in
            (error as? StoreError)?.code == .idempotencyConflict && "\(error)".contains("different request")
        }
        #expect(try store.lastSequence() == 3)
        // The key survives reopening: idempotency is durable, not a cache.
        let reopened = try temporary.open()
        #expect(try reopened.append(request, idempotencyKey: "req-1").replayed)
        #expect(throws: StoreError.self) { try reopened.append([record("alice", "x")], idempotencyKey: "req-1") }
    }

    @Test func asOfQueriesShowWhatWasKnownAndMadeByThen() throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        _ = try store.append([record("alice", "marketing", time: "2026-01-01T00:00:00Z")], now: at("2026-01-01T00:00:01Z"))
        _ = try store.append([record("alice", "marketing", .deny, time: "2026-02-01T00:00:00Z")], now: at("2026-02-01T00:00:01Z"))
        // A back-dated import stored later does not belong to the earlier state.
        _ = try store.append([record("alice", "analytics", time: "2025-06-01T00:00:00Z")], now: at("2026-03-01T00:00:00Z"))
        #expect(try store.history(of: "alice", asOf: at("2025-12-31T00:00:00Z")).isEmpty)
        #expect(try store.history(of: "alice", asOf: at("2026-01-15T00:00:00Z")).map(\.sequence) == [1])
        #expect(try store.history(of: "alice", asOf: at("2026-02-15T00:00:00Z")).map(\.sequence) == [1, 2])
        #expect(try store.history(of: "alice", asOf: at("2026-03-02T00:00:00Z")).map(\.sequence) == [1, 2, 3])
    }

    /// The subject hash copies a keyed HMAC state and writes hex by hand; a one-shot HMAC under
    /// the key read from the file, printed with `%02x`, must give the same text for every id.
    @Test func subjectHashIsTheHMACOfTheIdUnderTheStoresKey() throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        let stored = try #require(try store.pool.read { try String.fetchOne($0, sql: "SELECT value FROM store_meta WHERE key = 'erasure_key'") })
        let key = SymmetricKey(data: try #require(Data(base64Encoded: stored)))
        let subjects = ["alice", "bob", "alice", "", "jos\u{E9}", "jose\u{301}", String(repeating: "\u{10FFFF}", count: 64), "a\u{0}b"]
        for subject in subjects {
            let expected = HMAC<SHA256>.authenticationCode(for: Data(subject.utf8), using: key).map { String(format: "%02x", $0) }.joined()
            #expect(store.subjectHash(subject) == expected, "\(subject.debugDescription)")
            #expect(Array(subject.utf8).withUnsafeBytes { store.subjectHash(bytes: $0) } == expected)
        }
    }

    @Test func erasureDeletesEverythingAndLeavesOnlyAKeyedHashTombstone() throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        _ = try store.append([record("alice", "marketing"), record("bob", "marketing"), record("alice", "analytics")], idempotencyKey: "alice-signup")
        let tombstone = try store.erase(subject: "alice", now: at("2026-05-01T00:00:00Z"))
        #expect(tombstone.recordCount == 2)
        #expect(tombstone.sequence == 4)
        #expect(tombstone.erasedAt == at("2026-05-01T00:00:00Z"))
        #expect(tombstone.subjectHash.count == 64)
        #expect(tombstone.subjectHash == store.subjectHash("alice"))
        #expect(tombstone.subjectHash != store.subjectHash("bob"))
        #expect(try store.history(of: "alice").isEmpty)
        #expect(try store.history(of: "bob").count == 1)
        #expect(try store.erasures(of: "alice") == [tombstone])
        #expect(try store.erasures(of: "bob").isEmpty)
        // Nothing in the file names alice any more (secure_delete overwrites freed content).
        try store.pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        for suffix in ["", "-wal"] {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: temporary.path + suffix))) ?? Data()
            #expect(bytes.range(of: Data("alice".utf8)) == nil, "the subject id survives in \(temporary.path + suffix)")
        }
        #expect(try store.history(of: "bob").count == 1)
        // Erasing an unknown subject still leaves proof of the request.
        #expect(try store.erase(subject: "nobody").recordCount == 0)
    }

    @Test(arguments: [
        ("", "marketing", nil as String?, "subject_id"),
        (String(repeating: "x", count: 257), "marketing", nil, "subject_id"),
        ("alice", "", nil, "purpose"),
        ("alice", "marketing", "2025-01-01T00:00:00Z", "expires"),
    ])
    func invalidRecordsAreRejectedAndNothingIsStored(subject: String, purpose: String, expires: String?, message: String) throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        #expect {
            try store.append([record("ok", "marketing"), record(subject, purpose, expires: expires)])
        } throws: { error in
            (error as? StoreError)?.code == .invalidRecord && "\(error)".contains(message)
        }
        #expect(try store.lastSequence() == 0)
        #expect(try store.recordCount() == 0)
    }

    /// Review 21 F8: one limit for a record's source, quoted alike whatever the length.
    @Test func aSourceOverItsLimitIsRefusedWithOneText() throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        for length in [65, 256, 300] {
            var long = record("alice", "marketing")
            long.source = String(repeating: "s", count: length)
            #expect {
                try store.append([long])
            } throws: { error in
                (error as? StoreError)?.message == "source must be 1 to 64 bytes of UTF-8 (got \(length) bytes)"
            }
        }
        var edge = record("alice", "marketing")
        edge.source = String(repeating: "s", count: 64)
        _ = try store.append([edge])
    }

    /// Every read and write by subject refuses an invalid id with one text: never "no records".
    @Test func everyCallBySubjectRefusesAnInvalidIdAlike() throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        for subject in ["", "a\u{1}b", "nul\u{0}", String(repeating: "x", count: 257), "c1\u{85}"] {
            let expected = try #require(Identifier.subjectProblem(subject))
            #expect(expected.hasPrefix("subject_id "))
            let calls: [(String, () throws -> Void)] = [
                ("history", { _ = try store.history(of: subject) }),
                ("history as of", { _ = try store.history(of: subject, asOf: .now()) }),
                ("erasures", { _ = try store.erasures(of: subject) }),
                ("erase", { _ = try store.erase(subject: subject) }),
                ("append", { _ = try store.append([record(subject, "marketing")]) }),
            ]
            for (name, call) in calls {
                #expect("\(name) \(subject.debugDescription)") { try call() } throws: { error in
                    (error as? StoreError)?.code == .invalidRecord && (error as? StoreError)?.message == expected
                }
            }
        }
        #expect(try store.lastSequence() == 0)
    }

    @Test func aFeedLoadsTheStoreAndSeesItsOwnWritesAtOnce() throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        _ = try store.append([record("alice", "marketing"), record("bob", "analytics", data: "user.behavior")])
        let vocabulary = Vocabulary()
        let feed = try ConsentFeed(store: store, vocabulary: vocabulary)
        #expect(feed.appliedSequence == 2)
        let snapshot = feed.index.snapshot()
        #expect(snapshot.records(of: "alice").map(\.sequence) == [1])
        #expect(snapshot.records(of: "bob").first?.dataCategory == vocabulary.dataCategories.lookup("user.behavior"))
        #expect(snapshot.records(of: "alice").first?.purpose == vocabulary.purposes.lookup("marketing"))
        _ = try feed.record([record("alice", "marketing", .deny, time: "2026-02-01T00:00:00Z")])
        #expect(feed.index.snapshot().records(of: "alice").map(\.choice) == [.grant, .deny])
        _ = try feed.erase(subject: "bob")
        #expect(feed.index.snapshot().records(of: "bob").isEmpty)
        #expect(feed.appliedSequence == 4)
    }

    @Test func aFeedFollowsWritesMadeThroughAnotherConnection() throws {
        let temporary = TemporaryStore()
        let feed = try ConsentFeed(store: try temporary.open(), vocabulary: Vocabulary())
        let other = try temporary.open()  // a second pool on the same file, as another process has
        _ = try other.append([record("carol", "marketing"), record("dave", "marketing")])
        _ = try other.erase(subject: "dave")
        #expect(feed.index.snapshot().records(of: "carol").isEmpty)
        #expect(try feed.catchUp() == 2)  // carol's record and the erasure; dave's record is already gone
        #expect(feed.index.snapshot().records(of: "carol").count == 1)
        #expect(feed.index.snapshot().records(of: "dave").isEmpty)
        // Erasure of a subject the follower already holds, by the other connection.
        _ = try other.erase(subject: "carol")
        try feed.catchUp()
        #expect(feed.index.snapshot().records(of: "carol").isEmpty)
        #expect(feed.index.snapshot().subjectCount == 0)
    }

    @Test func reloadingGivesTheSameIndexAsFollowing() throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        let feed = try ConsentFeed(store: store, vocabulary: Vocabulary())
        var rng = SplitMix64(seed: 5)
        for round in 0..<30 {
            let subject = "s\(rng.next() % 12)"
            if rng.next() % 7 == 0 {
                _ = try feed.erase(subject: subject)
            } else {
                _ = try feed.record([record(subject, ["marketing", "analytics", "marketing.email"][Int(rng.next() % 3)], rng.next() % 2 == 0 ? .grant : .deny, time: "2026-01-01T00:00:\(10 + round)Z")])
            }
        }
        let reloaded = try ConsentFeed(store: try temporary.open(), vocabulary: Vocabulary())
        #expect(reloaded.appliedSequence == feed.appliedSequence)
        for index in 0..<12 {
            let subject = "s\(index)"
            #expect(reloaded.index.snapshot().records(of: subject).map(\.sequence) == feed.index.snapshot().records(of: subject).map(\.sequence))
            #expect(try store.history(of: subject).map(\.sequence) == feed.index.snapshot().records(of: subject).map(\.sequence))
        }
    }

    /// SQLite keeps writing to an open file that lost its name: each write would be acknowledged
    /// and then lost at the next start. Removed, renamed or replaced, every later write is refused
    /// with an error that says so, and nothing reaches either file.
    @Test(arguments: ["remove", "rename", "replace", "remove-wal", "remove-shm", "replace-wal"])
    func aStoreFileRemovedOrReplacedWhileOpenRefusesWrites(_ how: String) throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        _ = try store.append([record("alice", "marketing")])
        #expect(store.fileProblem() == nil)
        let moved = temporary.path + ".moved"
        switch how {
        case "remove": try FileManager.default.removeItem(atPath: temporary.path)
        case "rename": try FileManager.default.moveItem(atPath: temporary.path, toPath: moved)
        case "remove-wal", "remove-shm": try FileManager.default.removeItem(atPath: temporary.path + how.dropFirst(6))
        case "replace-wal":
            try FileManager.default.moveItem(atPath: temporary.path + "-wal", toPath: moved + "-wal")
            try FileManager.default.copyItem(atPath: moved + "-wal", toPath: temporary.path + "-wal")
        default:
            // Another file now at the path (a restored backup, say).
            try FileManager.default.moveItem(atPath: temporary.path, toPath: moved)
            #expect(FileManager.default.createFile(atPath: temporary.path, contents: Data()))
        }
        #expect(store.fileProblem() != nil)
        for attempt in [{ _ = try store.append([record("alice", "marketing", .deny)]) }, { _ = try store.erase(subject: "alice") }] {
            #expect {
                try attempt()
            } throws: { error in
                (error as? StoreError)?.code == .unavailable && "\(error)".contains(how.hasPrefix("replace") ? "replaced by another file" : "removed or renamed")
                    && "\(error)".contains(how.hasSuffix("wal") ? "write-ahead log" : how.hasSuffix("shm") ? "shared-memory index" : "consent store file")
            }
        }
        // The file now at the path is untouched.
        if how == "replace" { #expect(try Data(contentsOf: URL(fileURLWithPath: temporary.path)).isEmpty) }
        // The renamed file (its WAL still under the old name, as SQLite left it) holds only the
        // first write once both are put back together.
        if how == "rename" {
            for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: temporary.path + suffix) {
                try FileManager.default.moveItem(atPath: temporary.path + suffix, toPath: moved + suffix)
            }
            #expect(try SQLiteConsentStore(path: moved).history(of: "alice").map(\.choice) == [.grant])
        }
    }

    @Test func aFileThatIsNotADatabaseIsAClearError() throws {
        let temporary = TemporaryStore()
        try Data("this is not sqlite".utf8).write(to: URL(fileURLWithPath: temporary.path))
        #expect {
            _ = try temporary.open()
        } throws: { error in
            (error as? StoreError)?.code == .unavailable && "\(error)".contains("cannot open consent store")
        }
    }
}
