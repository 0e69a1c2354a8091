import ConsentModel
@testable import ConsentStore
import ConsentTesting
import Foundation
import GRDB
import Testing

/// What a follower does when the store under it changes in ways no write through consentd makes:
/// a counter set back below stored rows (a damaged store), and another store at the same
/// address (loaded whole).
@Suite struct StoreReplacementTests {
    static func grant(_ subject: String, _ purpose: String = "marketing") -> ConsentRecord {
        ConsentRecord(subject: subject, purpose: purpose, choice: .grant, recordedAt: .now(), source: "web")
    }

    static func withdraw(_ subject: String) -> ConsentRecord {
        ConsentRecord(subject: subject, purpose: "marketing", choice: .deny, recordedAt: .now(), source: "web")
    }

    /// The sequences of `subject`'s records in the feed's index.
    static func indexed(_ feed: ConsentFeed, _ subject: String) -> [UInt64] {
        feed.index.snapshot().records(of: subject).map { UInt64($0.sequence) }
    }

    /// A grant, then its withdrawal; the counter is set back to the grant (the review's case:
    /// the follower reloaded up to the counter, dropped the withdrawal, and allowed again). Every
    /// look now fails and says why, the index keeps the withdrawal, writes are refused; once the
    /// counter is repaired the follower goes on.
    func counterSetBackIsADamagedStore(_ store: any ConsentStorage, setCounter: (Int64) throws -> Void) throws {
        _ = try store.append([Self.grant("alice")], idempotencyKey: nil, payload: nil, now: .now())
        let withdrawal = try store.append([Self.withdraw("alice")], idempotencyKey: nil, payload: nil, now: .now()).sequences[0]
        let feed = try ConsentFeed(store: store, vocabulary: Vocabulary())
        #expect(Self.indexed(feed, "alice") == [1, 2])
        for counter in [Int64(1), 0] {
            try setCounter(counter)
            #expect { try feed.poll() } throws: { "\($0)".contains("damaged") && "\($0)".contains("(#\(withdrawal))") }
            #expect(throws: StoreError.self) { try feed.reload() }
            #expect(Self.indexed(feed, "alice") == [1, 2], "the withdrawal left the index")
            #expect(feed.appliedSequence == 2)
            #expect(throws: (any Error).self) { _ = try store.append([Self.grant("bob")], idempotencyKey: nil, payload: nil, now: .now()) }
            #expect(throws: StoreError.self) { _ = try ConsentFeed(store: store, vocabulary: Vocabulary()) }
        }
        // A look after the feed's own write: the counter below the cursor is no "nothing new".
        #expect(throws: StoreError.self) { try feed.catchUp() }
        try setCounter(2)
        try feed.poll()
        _ = try store.append([Self.grant("bob")], idempotencyKey: nil, payload: nil, now: .now())
        try feed.poll()
        #expect(Self.indexed(feed, "bob") == [3])
        #expect(Self.indexed(feed, "alice") == [1, 2])
    }

    /// The review's case: an erasure frees the sequences of the records it deletes, so a counter
    /// set back below it leaves room that the unique sequences did not refuse — a withdrawal and
    /// an erasure were written past it, and followers never applied them. Every write is refused
    /// now, and says why.
    func writesPastACounterSetBackAreRefused(_ store: any ConsentStorage, setCounter: (Int64) throws -> Void) throws {
        _ = try store.append([Self.grant("alice")], idempotencyKey: nil, payload: nil, now: .now())
        _ = try store.append([Self.grant("bob"), Self.grant("bob", "analytics")], idempotencyKey: nil, payload: nil, now: .now())
        _ = try store.erase(subject: "bob", now: .now())
        _ = try store.append([Self.grant("carol")], idempotencyKey: nil, payload: nil, now: .now())
        let feed = try ConsentFeed(store: store, vocabulary: Vocabulary())
        try setCounter(1)
        #expect { _ = try feed.record([Self.withdraw("alice")]) } throws: { "\($0)".contains("damaged") }
        #expect { _ = try feed.erase(subject: "alice") } throws: { "\($0)".contains("damaged") }
        #expect(try store.history(of: "alice").count == 1)
        #expect(throws: StoreError.self) { try feed.poll() }
        try setCounter(5)
        try feed.poll()
        _ = try feed.record([Self.withdraw("alice")])
        #expect(Self.indexed(feed, "alice") == [1, 6])
    }

    /// A reload forgets the writes the daemon acknowledged without applying them: they are in
    /// what it loaded, or were lost with the store it replaced (review: decisions waited for a
    /// sequence of the old store for ever).
    @Test func aReloadForgetsAcknowledgedWrites() throws {
        let temporary = TemporaryStore()
        let feed = try ConsentFeed(store: try temporary.open(), vocabulary: Vocabulary())
        _ = try feed.record([Self.grant("alice")])
        feed.holdDecisions(until: 50)
        #expect(feed.acknowledgedSequence == 50)
        try feed.reload()
        #expect(feed.acknowledgedSequence == 0)
    }

    @Test func sqliteWritesPastACounterSetBackAreRefused() throws {
        let temporary = TemporaryStore()
        let raw = try DatabaseQueue(path: temporary.path)
        try writesPastACounterSetBackAreRefused(try temporary.open()) { counter in
            try raw.write { try $0.execute(sql: "UPDATE store_meta SET value = ? WHERE key = 'last_sequence'", arguments: [counter]) }
        }
    }

    @Test(.enabled(if: TemporaryPostgres.serverURI != nil, Comment(rawValue: TemporaryPostgres.skipReason ?? "")))
    func postgresWritesPastACounterSetBackAreRefused() throws {
        let database = try TemporaryPostgres()
        let raw = try database.connect()
        try writesPastACounterSetBackAreRefused(try PostgresConsentStore(address: database.address)) { counter in
            try raw.execute("UPDATE store_counter SET last_sequence = \(counter) WHERE one")
        }
    }

    /// Key ids cached by a writer come to name other keys (a database restored from an older
    /// backup of the same store: the review's write of "analytics" was stored as
    /// "personalization"). The server refuses the ids before writing; the writer looks them up
    /// again and stores the record under its own purpose.
    @Test(.enabled(if: TemporaryPostgres.serverURI != nil, Comment(rawValue: TemporaryPostgres.skipReason ?? "")))
    func staleKeyIDsAreRefusedAndLookedUpAgain() throws {
        let database = try TemporaryPostgres()
        let store = try PostgresConsentStore(address: database.address)
        _ = try store.append([Self.grant("alice", "analytics")], idempotencyKey: nil, payload: nil, now: .now())
        let raw = try database.connect()
        // The id the writer cached for "analytics" now names another purpose.
        try raw.execute("UPDATE keys SET name = 'personalization' WHERE kind = 1 AND name = 'analytics'")
        let written = try store.append([Self.grant("dave", "analytics")], idempotencyKey: nil, payload: nil, now: .now())
        #expect(written.sequences == [2])
        #expect(try store.history(of: "dave").map(\.purpose) == ["analytics"])
        #expect(try store.history(of: "alice").map(\.purpose) == ["personalization"])
    }

    /// The review's SQLite cases: the file restored in place (same inode) from an older backup,
    /// another process interning a new name under the id this writer cached — the write must be
    /// stored under its own purpose; and an erasure of the subject whose row is the highest, with
    /// the counter set back below it, must be refused, not take a sequence already applied.
    @Test func sqliteRestoredInPlaceAndTopRowErasure() throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        _ = try store.append([Self.grant("alice", "marketing")], idempotencyKey: nil, payload: nil, now: .now())
        let backup = temporary.path + ".bak"
        let raw = try DatabaseQueue(path: temporary.path)
        try raw.backup(to: try DatabaseQueue(path: backup))
        _ = try store.append([Self.grant("bob", "analytics")], idempotencyKey: nil, payload: nil, now: .now())
        try DatabaseQueue(path: backup).backup(to: raw)
        _ = try SQLiteConsentStore(path: temporary.path).append([Self.grant("carol", "personalization")], idempotencyKey: nil, payload: nil, now: .now())
        _ = try store.append([Self.grant("dave", "analytics")], idempotencyKey: nil, payload: nil, now: .now())
        #expect(try store.history(of: "dave").map(\.purpose) == ["analytics"])
        #expect(try store.history(of: "carol").map(\.purpose) == ["personalization"])

        _ = try store.append([Self.grant("erin")], idempotencyKey: nil, payload: nil, now: .now())
        let top = try store.lastSequence()
        let feed = try ConsentFeed(store: store, vocabulary: Vocabulary())
        try raw.write { try $0.execute(sql: "UPDATE store_meta SET value = ? WHERE key = 'last_sequence'", arguments: [Int64(top) - 1]) }
        #expect { _ = try feed.erase(subject: "erin") } throws: { "\($0)".contains("damaged") }
        #expect(try store.history(of: "erin").count == 1)
    }

    @Test func sqliteCounterSetBackIsADamagedStore() throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        let raw = try DatabaseQueue(path: temporary.path)
        try counterSetBackIsADamagedStore(store) { counter in
            try raw.write { try $0.execute(sql: "UPDATE store_meta SET value = ? WHERE key = 'last_sequence'", arguments: [counter]) }
        }
    }

    @Test(.enabled(if: TemporaryPostgres.serverURI != nil, Comment(rawValue: TemporaryPostgres.skipReason ?? "")))
    func postgresCounterSetBackIsADamagedStore() throws {
        let database = try TemporaryPostgres()
        let store = try PostgresConsentStore(address: database.address)
        let raw = try database.connect()
        try counterSetBackIsADamagedStore(store) { counter in
            try raw.execute("UPDATE store_counter SET last_sequence = \(counter) WHERE one")
        }
    }

    /// The database is dropped and created again, and another store grows in it — past the
    /// follower's cursor, with other key ids and another erasure key. The follower loads it whole
    /// (nothing of the old store is left in the index, the new one's records all are), and
    /// writes go on with the new store's key ids, id and erasure key.
    @Test(.enabled(if: TemporaryPostgres.serverURI != nil, Comment(rawValue: TemporaryPostgres.skipReason ?? "")))
    func anotherPostgresStoreAtTheAddressIsLoadedWhole() throws {
        let database = try TemporaryPostgres()
        let store = try PostgresConsentStore(address: database.address)
        _ = try store.append([Self.grant("bob"), Self.grant("bob", "analytics")], idempotencyKey: nil, payload: nil, now: .now())
        let vocabulary = Vocabulary()
        let feed = try ConsentFeed(store: store, vocabulary: vocabulary)
        let oldID = store.storeID, oldHash = store.subjectHash("carol")
        let admin = try database.connectToServer()
        try admin.execute("DROP DATABASE \(database.name) WITH (FORCE)")
        try admin.execute("CREATE DATABASE \(database.name)")
        let other = try PostgresConsentStore(address: database.address)
        // Other names first, so the new store's key ids mean other names than the old one's.
        _ = try other.append([Self.grant("t0", "service.essential")], idempotencyKey: nil, payload: nil, now: .now())
        _ = try other.append((0..<5).map { Self.grant("t\($0)", "analytics") }, idempotencyKey: nil, payload: nil, now: .now())
        // A write before the follower has looked is refused: it names the old store.
        #expect { _ = try feed.record([Self.grant("carol")]) } throws: { ($0 as? StoreError)?.code == .storeChanged }
        let why = try feed.poll()
        #expect(why?.contains("another consent store") == true, "\(why ?? "no reload")")
        #expect(feed.reloads == 1)
        #expect(store.storeID == other.storeID && store.storeID != oldID)
        #expect(Self.indexed(feed, "bob").isEmpty, "the old store's records survived the reload")
        #expect(Self.indexed(feed, "t3") == [5])
        #expect(feed.appliedSequence == 6)
        let fresh = try ConsentFeed(store: other, vocabulary: vocabulary)
        #expect(feed.index.snapshot().records(of: "t0").map(\.purpose) == fresh.index.snapshot().records(of: "t0").map(\.purpose))
        // Writes go on in the new store, with its key ids and erasure key.
        let written = try feed.record([Self.grant("carol", "marketing"), Self.grant("carol", "analytics")])
        #expect(written.sequences == [7, 8])
        #expect(try other.history(of: "carol").map(\.purpose) == ["marketing", "analytics"])
        #expect(store.subjectHash("carol") == other.subjectHash("carol") && store.subjectHash("carol") != oldHash)
        let tombstone = try feed.erase(subject: "carol")
        #expect(try other.erasures(of: "carol") == [tombstone])
        #expect(Self.indexed(feed, "carol").isEmpty)
        try feed.poll()
        #expect(feed.reloads == 1)
    }
}
