import ConsentModel
@testable import ConsentStore
import ConsentTesting
import ConsentWorkload
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The consent store on a real PostgreSQL server (`CONSENTD_TEST_POSTGRES`; skipped without it).
@Suite(.enabled(if: TemporaryPostgres.serverURI != nil, Comment(rawValue: TemporaryPostgres.skipReason ?? "")), .serialized)
struct PostgresStoreTests {
    static func record(_ subject: String, _ purpose: String = "marketing", _ choice: Choice = .grant, data: String? = nil,
                       at: Int64 = 1_700_000_000_000_000, source: String = "test") -> ConsentRecord {
        ConsentRecord(subject: subject, purpose: purpose, dataCategory: data, choice: choice, recordedAt: Timestamp(microseconds: at), source: source)
    }

    @Test func writesReadsErasesAndIdempotencyBehaveAsOnSQLite() throws {
        let database = try TemporaryPostgres()
        let store = try PostgresConsentStore(address: database.address)
        let first = try store.append([Self.record("alice"), Self.record("alice", "analytics", .deny, data: "user.contact")], idempotencyKey: "k1")
        #expect(first == AppendResult(sequences: [1, 2], replayed: false))
        #expect(try store.append([Self.record("alice"), Self.record("alice", "analytics", .deny, data: "user.contact")], idempotencyKey: "k1") == AppendResult(sequences: [1, 2], replayed: true))
        #expect {
            _ = try store.append([Self.record("alice", "analytics")], idempotencyKey: "k1")
        } throws: { ($0 as? StoreError)?.code == .idempotencyConflict }
        #expect(try store.history(of: "alice").map(\.purpose) == ["marketing", "analytics"])
        #expect(try store.history(of: "alice").last?.dataCategory == "user.contact")
        #expect(try store.lastSequence() == 2)
        // Identity is bytes: NFC and NFD spellings are two customers; NUL is refused, not cut.
        _ = try store.append([Self.record("jos\u{E9}")])
        #expect(try store.history(of: "jose\u{301}").isEmpty)
        #expect(throws: StoreError.self) { _ = try store.append([Self.record("alice\u{0}x")]) }
        // A second instance (another daemon) sees the same store and the same erasure key.
        let other = try PostgresConsentStore(address: database.address)
        #expect(other.storeID == store.storeID)
        #expect(other.subjectHash("alice") == store.subjectHash("alice"))
        let tombstone = try other.erase(subject: "alice")
        #expect(tombstone.sequence == 4 && tombstone.recordCount == 2)
        #expect(try store.history(of: "alice").isEmpty)
        #expect(try store.erasures(of: "alice") == [tombstone])
        // The erased subject's idempotency key went with its records: the key is free again.
        #expect(try store.append([Self.record("alice", "analytics")], idempotencyKey: "k1").replayed == false)
        #expect(try store.history(of: "jos\u{E9}").count == 1)
    }

    /// A write holds its transaction open while a second write waits for the counter row: a
    /// follower reading meanwhile sees neither, then both in order — never the later without
    /// the earlier. The same scenario with a `bigserial` cursor (the naive scheme) loses a row
    /// for good, which shows that the scenario is the one that breaks followers.
    @Test func aFollowerNeverSkipsAWriteThatCommitsLate() throws {
        let database = try TemporaryPostgres()
        let store = try PostgresConsentStore(address: database.address)
        _ = try store.append([Self.record("seed")])
        let vocabulary = Vocabulary()
        let feed = try ConsentFeed(store: store, vocabulary: vocabulary)
        #expect(feed.appliedSequence == 1)

        // A: a write that has taken its sequence and not committed.
        let held = try database.connect(applicationName: "held-writer")
        let purpose = try held.column("SELECT id::text FROM keys WHERE kind = 1 AND name = 'marketing'")[0]
        let source = try held.column("SELECT id::text FROM keys WHERE kind = 3 AND name = 'test'")[0]
        try held.execute("BEGIN")
        try held.execute("""
            SELECT * FROM consentd_append('\(store.storeID)', NULL, '', 0, ARRAY['\\x6c617465'::bytea], ARRAY[\(purpose)]::int[], ARRAY[0]::int[],
                ARRAY[1]::smallint[], ARRAY[1700000000000000]::bigint[], ARRAY[-9223372036854775808]::bigint[], ARRAY[0]::smallint[],
                ARRAY[\(source)]::int[], ARRAY[-1]::bigint[], ARRAY['']::text[], ARRAY['']::text[], ARRAY[false])
            """)
        // B: the daemon's write, which must wait for A.
        let writer = try PostgresConsentStore(address: database.address)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var second: Result<AppendResult, Error>?
        Thread.detachNewThread {
            second = Result { try writer.append([Self.record("early")]) }
            done.signal()
        }
        let observer = try database.connect()
        var waiting = false
        for _ in 0..<200 where !waiting {
            waiting = try observer.column("SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'consentd-write' AND wait_event_type = 'Lock'") == ["1"]
            if !waiting { usleep(10_000) }
        }
        #expect(waiting, "the second write did not wait for the first's lock on the counter")
        #expect(try feed.catchUp() == 0, "a follower saw a change while the first write was still open")
        try held.execute("COMMIT")
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(try second?.get().sequences == [3])
        try feed.catchUp()
        #expect(feed.appliedSequence == 3)
        #expect(feed.index.snapshot().records(of: "late").count == 1, "the write that committed late was skipped")
        #expect(feed.index.snapshot().records(of: "early").count == 1)

        // The naive scheme on the same server: a bigserial cursor skips the late commit.
        try observer.execute("CREATE TABLE naive (seq bigserial PRIMARY KEY, subject text NOT NULL)")
        try held.execute("BEGIN")
        try held.execute("INSERT INTO naive (subject) VALUES ('late')")
        try observer.execute("INSERT INTO naive (subject) VALUES ('early')")
        var cursor: Int64 = 0
        var seen: [String] = []
        func follow() throws {
            for row in try observer.execute("SELECT seq, subject FROM naive WHERE seq > \(cursor) ORDER BY seq") {
                let (seq, subject) = try row.decode((Int64, String).self)
                seen.append(subject)
                cursor = seq
            }
        }
        try follow()
        try held.execute("COMMIT")
        try follow()
        #expect(seen == ["early"], "the naive follower should have skipped the late commit (this scenario shows the trap)")
    }

    /// The same random operations — hostile ids, idempotent retries and conflicts, erasures,
    /// invalid records — on an SQLite store and a PostgreSQL store give the same answers, the
    /// same histories and tombstones, and indexes (followed and freshly loaded) that agree.
    @Test(arguments: [UInt64(0x5EED_0001), 0x5EED_0002])
    func theSameOperationsGiveTheSameStoreAsSQLite(seed: UInt64) throws {
        let database = try TemporaryPostgres()
        let postgres = try PostgresConsentStore(address: database.address)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgdiff-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let sqlite = try SQLiteConsentStore(path: directory.appendingPathComponent("store.sqlite").path)
        let vocabulary = Vocabulary()
        let feeds = (try ConsentFeed(store: sqlite, vocabulary: vocabulary), try ConsentFeed(store: postgres, vocabulary: vocabulary))
        var rng = SplitMix64(seed: seed)
        let subjects = ["alice", "jos\u{E9}", "jose\u{301}", "\u{212B}", "\u{C5}", "a\u{0}b", "\u{85}x", "", String(repeating: "z", count: 256),
                        String(repeating: "z", count: 257), "\u{1F600}", "b\u{7F}", "Ω", "\u{2126}", "x y"]
        let purposes = ["marketing", "marketing.email", "analytics", "personalisation", "marketing\u{0}x", "marke\u{301}ting"]
        let data: [String?] = [nil, "user.contact", "user.behavior.browsing", "user\u{85}"]
        let keys: [String?] = [nil, nil, "k1", "k2", "k\u{0}", "jos\u{E9}-key", "jose\u{301}-key"]
        let now = Timestamp(microseconds: 1_800_000_000_000_000)
        let times: [Int64] = [-62_135_596_800_000_000, 0, 1_700_000_000_000_000, now.microseconds + 299_000_000, now.microseconds + 301_000_000, 253_402_300_799_999_999]
        func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }
        func outcome(_ body: () throws -> String) -> String {
            do { return try body() } catch let error as StoreError { return "error \(error.code)" } catch { return "error \(error)" }
        }
        for step in 0..<400 {
            let operation: (any ConsentStorage) throws -> String
            if rng.next() % 8 == 0 {
                let subject = pick(subjects)
                operation = { store in
                    let tombstone = try store.erase(subject: subject, now: now)
                    return "erased #\(tombstone.sequence) \(tombstone.recordCount)"
                }
            } else {
                let records = (0..<Int(1 + rng.next() % 3)).map { _ in
                    let at = pick(times)
                    return ConsentRecord(subject: pick(subjects), purpose: pick(purposes), dataCategory: pick(data), choice: rng.next() % 2 == 0 ? .grant : .deny,
                                         recordedAt: Timestamp(microseconds: at), expiresAt: rng.next() % 4 == 0 ? Timestamp(microseconds: at &+ 1_000_000) : nil,
                                         source: pick(["banner", "api", "so\u{0}urce"]), noticeVersion: rng.next() % 3 == 0 ? UInt32(rng.next() % 5) : nil,
                                         jurisdiction: pick([nil, "DE", "US-CA", "d\u{E9}"]), evidence: pick([nil, "", "receipt-1"]))
                }
                let key = pick(keys)
                operation = { store in
                    let result = try store.append(records, idempotencyKey: key, payload: nil, now: now)
                    return "\(result.sequences) replayed \(result.replayed)"
                }
            }
            let answers = (outcome { try operation(sqlite) }, outcome { try operation(postgres) })
            #expect(answers.0 == answers.1, "step \(step): SQLite \(answers.0), PostgreSQL \(answers.1)")
            if answers.0 != answers.1 { return }
            if step % 25 == 0 || step == 399 {
                try feeds.0.catchUp()
                try feeds.1.catchUp()
                for subject in subjects where Identifier.isValid(subject) {
                    let histories = (try sqlite.history(of: subject), try postgres.history(of: subject))
                    #expect(histories.0 == histories.1, "step \(step): history of \(subject.debugDescription)")
                    // Each store has its own erasure key: the hashes differ, nothing else does.
                    #expect(try sqlite.erasures(of: subject).map { [$0.sequence, UInt64($0.recordCount), UInt64(bitPattern: $0.erasedAt.microseconds)] }
                            == postgres.erasures(of: subject).map { [$0.sequence, UInt64($0.recordCount), UInt64(bitPattern: $0.erasedAt.microseconds)] })
                    #expect(Array(feeds.0.index.snapshot().records(of: subject)) == Array(feeds.1.index.snapshot().records(of: subject)),
                            "step \(step): followed index of \(subject.debugDescription)")
                }
                #expect(try sqlite.lastSequence() == postgres.lastSequence())
            }
        }
        // A fresh load of each equals its follower.
        let loaded = try ConsentFeed(store: postgres, vocabulary: vocabulary)
        #expect(loaded.appliedSequence == feeds.1.appliedSequence)
        #expect(loaded.index.snapshot().recordCount == feeds.1.index.snapshot().recordCount)
        for subject in subjects where Identifier.isValid(subject) {
            #expect(Array(loaded.index.snapshot().records(of: subject)) == Array(feeds.1.index.snapshot().records(of: subject)))
        }
        var exported: [ConsentRecord] = [], reference: [ConsentRecord] = []
        try postgres.forEachRecord { exported.append($0) }
        try sqlite.forEachRecord { reference.append($0) }
        #expect(exported == reference)
    }

    /// A write stuck behind a lock past the bound is cancelled by the server and says nothing
    /// was written — and nothing is, after the lock goes (review: the client gave up, the server
    /// went on waiting, and the write committed later behind the caller's back).
    @Test func aWriteThatTimesOutIsCancelledNotCommittedLater() throws {
        let database = try TemporaryPostgres()
        let store = try PostgresConsentStore(address: database.address, timeout: .seconds(1))
        _ = try store.append([Self.record("first")])
        let holder = try database.connect(applicationName: "lock-holder")
        try holder.execute("BEGIN")
        try holder.execute("SELECT * FROM store_counter FOR UPDATE")
        #expect {
            _ = try store.append([Self.record("late")])
        } throws: { error in "\(error)".contains("nothing was written") }
        try holder.execute("COMMIT")
        usleep(300_000)
        #expect(try store.history(of: "late").isEmpty, "a write reported as failed committed later")
        #expect(try store.append([Self.record("after")]).sequences == [2])
    }

    @Test func writesAndLooksOfOneDaemonInterleaveWithoutReloading() throws {
        let database = try TemporaryPostgres()
        try writesAndLooksInterleaveWithoutReloading(try PostgresConsentStore(address: database.address)) { try PostgresConsentStore(address: database.address) }
    }

    /// Several writers (each its own store instance, as several daemons) append and erase at
    /// once while a follower catches up as it goes: sequences are gap-free and unique, and the
    /// followed index equals a fresh load at the end.
    @Test func concurrentWritersAndAFollowerConverge() throws {
        let database = try TemporaryPostgres()
        let stores = try (0..<4).map { _ in try PostgresConsentStore(address: database.address) }
        let vocabulary = Vocabulary()
        let feed = try ConsentFeed(store: stores[0], vocabulary: vocabulary)
        let group = DispatchGroup()
        let sequences = NSLock()
        nonisolated(unsafe) var handed: [UInt64] = []
        nonisolated(unsafe) var failures: [String] = []
        for (index, store) in stores.enumerated() {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var rng = SplitMix64(seed: UInt64(index + 1))
                for step in 0..<150 {
                    do {
                        let subject = "s\(rng.next() % 20)"
                        if rng.next() % 10 == 0 {
                            let tombstone = try store.erase(subject: subject)
                            sequences.withLock { handed.append(tombstone.sequence) }
                        } else {
                            let result = try store.append([Self.record(subject, rng.next() % 2 == 0 ? "marketing" : "analytics", rng.next() % 2 == 0 ? .grant : .deny)],
                                                          idempotencyKey: "w\(index)-\(step)")
                            sequences.withLock { handed += result.sequences }
                        }
                    } catch {
                        sequences.withLock { failures.append("\(error)") }
                    }
                }
            }
        }
        while group.wait(timeout: .now() + 0.005) == .timedOut { _ = try feed.catchUp() }
        try feed.catchUp()
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        #expect(handed.sorted() == Array(1...UInt64(handed.count)), "sequences are not gap-free and unique")
        let loaded = try ConsentFeed(store: stores[1], vocabulary: vocabulary)
        #expect(loaded.appliedSequence == feed.appliedSequence)
        for subject in (0..<20).map({ "s\($0)" }) {
            #expect(Array(loaded.index.snapshot().records(of: subject)) == Array(feed.index.snapshot().records(of: subject)), "\(subject)")
        }
    }

    /// Migration v3 on a store that kept its receipts logs as `store_meta` values: the lines
    /// become rows, in order; appending after is one insert.
    @Test func receiptLogsMoveToRowsOfTheirOwn() throws {
        let database = try TemporaryPostgres()
        _ = try PostgresConsentStore(address: database.address)
        let raw = try database.connect()
        // As before v3.
        try raw.execute("DROP TABLE receipt_log")
        try raw.execute("DELETE FROM consentd_migrations WHERE name = 'v3-receipt-log-rows'")
        try raw.execute("INSERT INTO store_meta (key, value) VALUES ('receipt_retired', E'one\\ntwo\\nthree'), ('receipt_breaks', 'broken')")
        let store = try PostgresConsentStore(address: database.address)
        #expect(try store.receiptLog(.retirements) == ["one", "two", "three"])
        #expect(try store.receiptChainBreaks() == ["broken"])
        try store.appendReceiptLog(.retirements, "four\nlines")
        #expect(try store.receiptLog(.retirements) == ["one", "two", "three", "four lines"])
        #expect(try raw.column("SELECT count(*)::text FROM store_meta WHERE key IN ('receipt_retired', 'receipt_breaks')") == ["0"])
    }
}

/// PostgreSQL store addresses (no server needed).
@Suite struct PostgresAddressTests {
    @Test func addressesParseAndRedact() throws {
        let tcp = try PostgresAddress("postgres://ann:secret@db.example:6543/consent", environment: [:])
        #expect(tcp.host == "db.example" && tcp.port == 6543 && tcp.user == "ann" && tcp.password == "secret" && tcp.database == "consent")
        #expect(!tcp.description.contains("secret"))
        let socket = try PostgresAddress("postgresql:///consent?host=/tmp/pg&port=5433&user=bob", environment: [:])
        #expect(socket.socketDirectory == "/tmp/pg" && socket.port == 5433 && socket.user == "bob" && socket.host == nil)
        #expect(try PostgresAddress(socket.description, environment: [:]) == socket)
        #expect(try PostgresAddress(tcp.description, environment: ["PGPASSWORD": "secret"]) == tcp)
        for bad in ["postgres://h/", "postgres://h:99999/db", "postgres://h/db?sslmode=require", "postgres://h/db?bogus=1"] {
            #expect(throws: StoreError.self, "\(bad)") { _ = try PostgresAddress(bad, environment: [:]) }
        }
        // No password reaches an error message, however it is spelt.
        for secret in ["postgres://u:S3cretPW@h/db?bogus=1", "postgres://h/db?passwd=S3cretPW", "postgres://h/db?pwd=S3cretPW&x=1", "postgres://h:99999/db?password=S3cretPW"] {
            #expect {
                _ = try PostgresAddress(secret, environment: [:])
            } throws: { !"\($0)".contains("S3cretPW") }
        }
    }
}
