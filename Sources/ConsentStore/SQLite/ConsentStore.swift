import ConsentModel
import Crypto
import Foundation
import GRDB
import GRDBSQLite
import Synchronization

/// Where a write's records landed.
public struct AppendResult: Sendable, Equatable {
    /// The store sequences assigned to the records, in order.
    public var sequences: [UInt64]
    /// True when an earlier write with the same idempotency key supplied this result.
    public var replayed: Bool
}

/// Proof that a subject was erased: nothing that identifies the person.
public struct ErasureTombstone: Sendable, Equatable {
    /// The store sequence of the erasure.
    public var sequence: UInt64
    /// HMAC-SHA256 of the subject id under the store's erasure key, hex.
    public var subjectHash: String
    /// When the erasure happened.
    public var erasedAt: Timestamp
    /// How many records were deleted.
    public var recordCount: Int

    /// Creates a tombstone value.
    public init(sequence: UInt64, subjectHash: String, erasedAt: Timestamp, recordCount: Int) {
        self.sequence = sequence
        self.subjectHash = subjectHash
        self.erasedAt = erasedAt
        self.recordCount = recordCount
    }
}

/// The durable consent store: append-only history in SQLite (WAL, synchronous=FULL) through GRDB.
///
/// One instance (one `DatabasePool`) per process. Several processes may share the file: writes
/// are serialised by SQLite's lock (busy timeout), sequences come from one counter in the file,
/// and `changes(after:)` lets any process follow the others.
public final class SQLiteConsentStore: Sendable {
    /// The database file.
    public let path: String
    let pool: DatabasePool
    private let keyCache = KeyCache()
    private let erasureKey: SymmetricKey

    /// Opens (creating and migrating if needed) the store at `path`.
    /// - Parameter busyTimeout: how long a write waits for another process's lock, in seconds.
    public init(path: String, busyTimeout: Double = 5) throws {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.prepareDatabase { db in
            // An acknowledged write must survive power loss: fsync the WAL at every commit.
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            // Erased records are overwritten, not just unlinked, in the file and the WAL.
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try StoreSchema.migrator.migrate(pool)
            let key = try pool.write { db -> String in
                if let existing = try String.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = 'erasure_key'") {
                    return existing
                }
                let fresh = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
                try db.execute(sql: "INSERT INTO store_meta (key, value) VALUES ('erasure_key', ?)", arguments: [fresh])
                return fresh
            }
            erasureKey = SymmetricKey(data: Data(base64Encoded: key) ?? Data(key.utf8))
        } catch let error as DatabaseError {
            throw StoreError(.unavailable, "cannot open consent store \(path): \(error.message ?? error.description)")
        }
    }

    // MARK: writing

    /// Validates a record before it is stored.
    public static func validate(_ record: ConsentRecord) throws {
        guard DecisionRequest.isValidSubject(record.subject) else {
            throw StoreError(.invalidRecord, "subject id must be 1 to 256 bytes of UTF-8")
        }
        guard !record.purpose.isEmpty, record.purpose.utf8.count <= 256 else {
            throw StoreError(.invalidRecord, "purpose must be a taxonomy key of 1 to 256 bytes")
        }
        if let data = record.dataCategory, data.isEmpty || data.utf8.count > 256 {
            throw StoreError(.invalidRecord, "data category must be a taxonomy key of 1 to 256 bytes")
        }
        if let expires = record.expiresAt, expires <= record.recordedAt {
            throw StoreError(.invalidRecord, "expires (\(expires)) must be after the time the choice was made (\(record.recordedAt))")
        }
        guard !record.source.isEmpty, record.source.utf8.count <= 64 else {
            throw StoreError(.invalidRecord, "source must be 1 to 64 bytes")
        }
        if let evidence = record.evidence, evidence.utf8.count > 4096 {
            throw StoreError(.invalidRecord, "evidence reference must be at most 4096 bytes")
        }
    }

    /// Appends records in one durable transaction and returns their sequences. With an
    /// idempotency key, a repeated call stores nothing and returns the first call's result.
    /// Acknowledged (returned) only after the commit is synced.
    public func append(_ records: [ConsentRecord], idempotencyKey: String? = nil, now: Timestamp = .now()) throws -> AppendResult {
        for record in records { try Self.validate(record) }
        return try withDatabaseErrors {
            try pool.write { db in
                if let idempotencyKey, let row = try Row.fetchOne(db, sql: "SELECT first_sequence, count FROM idempotency_keys WHERE key = ?", arguments: [idempotencyKey]) {
                    let first: Int64 = row[0]
                    let count: Int64 = row[1]
                    return AppendResult(sequences: (0..<count).map { UInt64(first + $0) }, replayed: true)
                }
                let sequences = try insert(records, db: db, now: now)
                if let idempotencyKey, let first = sequences.first {
                    try db.execute(sql: "INSERT INTO idempotency_keys (key, first_sequence, count, stored_at) VALUES (?, ?, ?, ?)",
                                   arguments: [idempotencyKey, Int64(first), sequences.count, now.microseconds])
                }
                return AppendResult(sequences: sequences, replayed: false)
            }
        }
    }

    /// Inserts records inside an open write transaction; returns the assigned sequences.
    func insert(_ records: [ConsentRecord], db: Database, now: Timestamp) throws -> [UInt64] {
        guard !records.isEmpty else { return [] }
        var next = try Int64.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = 'last_sequence'") ?? 0
        let statement = try db.cachedStatement(sql: """
            INSERT INTO consent_records (subject, sequence, purpose_id, data_id, choice, recorded_at, expires_at,
                legal_basis, source_id, notice_version, jurisdiction, evidence, stored_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let handle = statement.sqliteStatement
        var sequences: [UInt64] = []
        sequences.reserveCapacity(records.count)
        for record in records {
            next += 1
            let purpose = try keyCache.id(kind: .purpose, name: record.purpose, db: db)
            let data = try record.dataCategory.map { try keyCache.id(kind: .data, name: $0, db: db) }
            let source = try keyCache.id(kind: .source, name: record.source, db: db)
            sqlite3_reset(handle)
            bindText(handle, 1, record.subject)
            sqlite3_bind_int64(handle, 2, next)
            sqlite3_bind_int64(handle, 3, purpose)
            if let data { sqlite3_bind_int64(handle, 4, data) } else { sqlite3_bind_null(handle, 4) }
            sqlite3_bind_int64(handle, 5, Int64(record.choice.rawValue))
            sqlite3_bind_int64(handle, 6, record.recordedAt.microseconds)
            if let expires = record.expiresAt { sqlite3_bind_int64(handle, 7, expires.microseconds) } else { sqlite3_bind_null(handle, 7) }
            sqlite3_bind_int64(handle, 8, Int64(record.legalBasis.rawValue))
            sqlite3_bind_int64(handle, 9, source)
            if let notice = record.noticeVersion { sqlite3_bind_int64(handle, 10, Int64(notice)) } else { sqlite3_bind_null(handle, 10) }
            if let jurisdiction = record.jurisdiction { bindText(handle, 11, jurisdiction) } else { sqlite3_bind_null(handle, 11) }
            if let evidence = record.evidence { bindText(handle, 12, evidence) } else { sqlite3_bind_null(handle, 12) }
            sqlite3_bind_int64(handle, 13, now.microseconds)
            let code = sqlite3_step(handle)
            guard code == SQLITE_DONE else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))))
            }
            sequences.append(UInt64(next))
        }
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        try db.execute(sql: "UPDATE store_meta SET value = ? WHERE key = 'last_sequence'", arguments: [next])
        return sequences
    }

    /// Runs `body` inside one write transaction with an `Importer` that appends records;
    /// everything commits together (durably) when `body` returns.
    public func withTransaction<T>(now: Timestamp = .now(), _ body: (inout Importer) throws -> T) throws -> T {
        try withDatabaseErrors {
            try pool.write { db in
                var importer = Importer(store: self, db: db, now: now)
                return try body(&importer)
            }
        }
    }

    /// Appends records inside a `withTransaction` block.
    public struct Importer: ~Copyable {
        let store: SQLiteConsentStore
        let db: Database
        let now: Timestamp

        /// Appends validated records; returns their sequences.
        public mutating func append(_ records: [ConsentRecord]) throws -> [UInt64] {
            for record in records { try SQLiteConsentStore.validate(record) }
            return try store.insert(records, db: db, now: now)
        }
    }

    // MARK: erasure

    /// Deletes every record of `subject` and leaves only a tombstone: the keyed hash of the id,
    /// the time and the count. Idempotency keys whose writes touched the subject go too.
    public func erase(subject: String, now: Timestamp = .now()) throws -> ErasureTombstone {
        guard DecisionRequest.isValidSubject(subject) else { throw StoreError(.invalidRecord, "subject id must be 1 to 256 bytes of UTF-8") }
        let hash = subjectHash(subject)
        return try withDatabaseErrors {
            try pool.write { db in
                let sequences = try Int64.fetchAll(db, sql: "SELECT sequence FROM consent_records WHERE subject = ? ORDER BY sequence", arguments: [subject])
                if !sequences.isEmpty {
                    try db.execute(sql: "DELETE FROM idempotency_keys WHERE first_sequence IN (SELECT value FROM json_each(?))", arguments: ["[" + sequences.map(String.init).joined(separator: ",") + "]"])
                }
                try db.execute(sql: "DELETE FROM consent_records WHERE subject = ?", arguments: [subject])
                let sequence = (try Int64.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = 'last_sequence'") ?? 0) + 1
                try db.execute(sql: "INSERT INTO erasures (sequence, subject_hash, erased_at, record_count, anchor_sequence) VALUES (?, ?, ?, ?, ?)",
                               arguments: [sequence, hash, now.microseconds, sequences.count, sequences.first])
                try db.execute(sql: "UPDATE store_meta SET value = ? WHERE key = 'last_sequence'", arguments: [sequence])
                return ErasureTombstone(sequence: UInt64(sequence), subjectHash: hash, erasedAt: now, recordCount: sequences.count)
            }
        }
    }

    /// The tombstones of `subject`'s erasures, found by recomputing the keyed hash.
    public func erasures(of subject: String) throws -> [ErasureTombstone] {
        let hash = subjectHash(subject)
        return try withDatabaseErrors {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT sequence, erased_at, record_count FROM erasures WHERE subject_hash = ? ORDER BY sequence", arguments: [hash]).map {
                    ErasureTombstone(sequence: UInt64($0[0] as Int64), subjectHash: hash, erasedAt: Timestamp(microseconds: $0[1]), recordCount: $0[2])
                }
            }
        }
    }

    /// HMAC-SHA256 of the subject id under this store's erasure key, as hex.
    public func subjectHash(_ subject: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(subject.utf8), using: erasureKey).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    // MARK: reading

    static let recordColumns = """
        r.subject, r.sequence, p.name, d.name, r.choice, r.recorded_at, r.expires_at, r.legal_basis,
        s.name, r.notice_version, r.jurisdiction, r.evidence, r.stored_at
        """
    static let recordJoins = """
        FROM consent_records r JOIN keys p ON p.id = r.purpose_id LEFT JOIN keys d ON d.id = r.data_id JOIN keys s ON s.id = r.source_id
        """

    static func record(from row: Row) -> ConsentRecord {
        ConsentRecord(
            sequence: UInt64(row[1] as Int64), subject: row[0], purpose: row[2], dataCategory: row[3],
            choice: Choice(rawValue: UInt8(row[4] as Int64)) ?? .deny, recordedAt: Timestamp(microseconds: row[5]),
            expiresAt: (row[6] as Int64?).map(Timestamp.init(microseconds:)),
            legalBasis: LegalBasis(rawValue: UInt8(row[7] as Int64)) ?? .consent, source: row[8],
            noticeVersion: (row[9] as Int64?).map { UInt32(clamping: $0) }, jurisdiction: row[10], evidence: row[11]
        )
    }

    /// Every record of `subject`, in sequence order.
    public func history(of subject: String) throws -> [ConsentRecord] {
        try withDatabaseErrors {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT \(Self.recordColumns) \(Self.recordJoins) WHERE r.subject = ? ORDER BY r.sequence", arguments: [subject]).map(Self.record(from:))
            }
        }
    }

    /// The subject's records as the store knew them at `instant`: stored by then and recorded by
    /// then, in sequence order (expired ones included; callers judge validity at the instant).
    public func history(of subject: String, asOf instant: Timestamp) throws -> [ConsentRecord] {
        try withDatabaseErrors {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT \(Self.recordColumns) \(Self.recordJoins) WHERE r.subject = ? AND r.stored_at <= ? AND r.recorded_at <= ? ORDER BY r.sequence",
                                 arguments: [subject, instant.microseconds, instant.microseconds]).map(Self.record(from:))
            }
        }
    }

    /// Streams every record in sequence order.
    public func forEachRecord(_ body: (ConsentRecord) throws -> Void) throws {
        try withDatabaseErrors {
            try pool.read { db in
                let cursor = try Row.fetchCursor(db, sql: "SELECT \(Self.recordColumns) \(Self.recordJoins) ORDER BY r.sequence")
                while let row = try cursor.next() { try body(Self.record(from: row)) }
            }
        }
    }

    /// The highest sequence handed out so far (records and erasures share the counter).
    public func lastSequence() throws -> UInt64 {
        try withDatabaseErrors {
            try pool.read { db in UInt64(try Int64.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = 'last_sequence'") ?? 0) }
        }
    }

    /// Number of records stored.
    public func recordCount() throws -> Int {
        try withDatabaseErrors { try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM consent_records") ?? 0 } }
    }

    /// Number of records with a sequence at or below `sequence`.
    public func recordCount(throughSequence sequence: UInt64) throws -> Int {
        try withDatabaseErrors {
            try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM consent_records WHERE sequence <= ?", arguments: [Int64(sequence)]) ?? 0 }
        }
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    public func integrityCheck() throws -> String {
        try withDatabaseErrors {
            try pool.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "\n") }
        }
    }

    func withDatabaseErrors<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            throw StoreError(.database, "consent store \(path): \(error.message ?? "\(error.resultCode)") (\(error.resultCode))")
        }
    }
}

enum KeyKind: Int64 {
    case purpose = 1
    case data = 2
    case source = 3
}

/// name → row id of the `keys` table, per kind; ids never change once assigned.
final class KeyCache: Sendable {
    private let ids = Mutex<[KeyKind: [String: Int64]]>([:])

    func id(kind: KeyKind, name: String, db: Database) throws -> Int64 {
        if let id = ids.withLock({ $0[kind]?[name] }) { return id }
        try db.execute(sql: "INSERT OR IGNORE INTO keys (kind, name) VALUES (?, ?)", arguments: [kind.rawValue, name])
        guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM keys WHERE kind = ? AND name = ?", arguments: [kind.rawValue, name]) else {
            throw StoreError(.database, "could not intern \(name)")
        }
        ids.withLock { $0[kind, default: [:]][name] = id }
        return id
    }
}

private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

@inline(__always)
func bindText(_ handle: OpaquePointer?, _ index: Int32, _ text: String) {
    var text = text
    text.withUTF8 { buffer in
        guard buffer.count > 0 else {
            _ = sqlite3_bind_text(handle, index, "", 0, transient)
            return
        }
        _ = sqlite3_bind_text(handle, index, UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self), Int32(buffer.count), transient)
    }
}
