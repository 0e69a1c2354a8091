import ConsentModel
import Crypto
import Foundation
import GRDB
import GRDBSQLite
import Synchronization

/// The durable consent store: append-only history in SQLite (WAL, synchronous=FULL) through GRDB.
///
/// One instance (one `DatabasePool`) per process. Several processes may share the file: writes
/// are serialised by SQLite's lock (busy timeout), sequences come from one counter in the file,
/// and `changes(after:)` lets any process follow the others.
public final class SQLiteConsentStore: ConsentStorage {
    /// The database file.
    public let path: String
    /// The database file (`ConsentStorage`).
    public var location: String { path }
    let pool: DatabasePool
    private let keyCache = KeyCache()
    /// Hashes subject ids under the store's erasure key.
    private let subjectHasher: SubjectHasher
    private let injectedFailures = Mutex(0)
    /// The device and inode of the database file as opened: a write checks that `path` still
    /// names this file (see `fileProblem`).
    private let fileIdentity: (device: UInt64, inode: UInt64)
    /// The same for the write-ahead log and the shared-memory index SQLite keeps beside it, as
    /// they were once the store was open (see `fileProblem`).
    private let companionIdentities: [(suffix: String, name: String, device: UInt64, inode: UInt64)]
    /// How far in the future a record's `recorded_at` may lie (clocks of writers disagree a little;
    /// a record from the far future would override every later real choice).
    public let maximumClockSkew: TimeSpan

    /// The default `maximumClockSkew`: 5 minutes.
    public static let defaultClockSkew = StoreRules.defaultClockSkew
    /// The default mode of the database file (and of the WAL and SHM files SQLite creates beside
    /// it with the same mode): readable and writable by the owner only.
    public static let defaultFileMode: UInt16 = 0o600

    /// Opens (creating and migrating if needed) the store at `path`.
    /// - Parameters:
    ///   - busyTimeout: how long a write waits for another process's lock, in seconds.
    ///   - fileMode: the permission bits of the database, WAL and SHM files. A new file is created
    ///     with this mode (no window with a wider one); an existing file with wider bits is narrowed.
    ///   - maximumClockSkew: how far in the future a record's `recorded_at` may lie.
    ///   - synchronousCommits: fsync every commit (the default, and what the contract needs);
    ///     false only for fuzzing, where durability is not what is tested.
    public init(path: String, busyTimeout: Double = 5, fileMode: UInt16 = SQLiteConsentStore.defaultFileMode,
                maximumClockSkew: TimeSpan = SQLiteConsentStore.defaultClockSkew, synchronousCommits: Bool = true) throws {
        self.path = path
        self.maximumClockSkew = maximumClockSkew
        try StoreFiles.secure(path, mode: fileMode)
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.prepareDatabase { db in
            // An acknowledged write must survive power loss: fsync the WAL at every commit.
            try db.execute(sql: synchronousCommits ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = OFF")
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
                let fresh = SubjectHasher.freshErasureKey()
                try db.execute(sql: "INSERT INTO store_meta (key, value) VALUES ('erasure_key', ?)", arguments: [fresh])
                return fresh
            }
            subjectHasher = SubjectHasher(erasureKey: key)
            guard let identity = Self.identity(of: path) else {
                throw StoreError(.unavailable, "cannot open consent store \(path): \(String(cString: strerror(errno)))")
            }
            fileIdentity = identity
            // The write above opened both (WAL mode); they last as long as this store is open.
            companionIdentities = [("-wal", "write-ahead log"), ("-shm", "shared-memory index")].compactMap { suffix, name in
                Self.identity(of: path + suffix).map { (suffix, name, $0.device, $0.inode) }
            }
            // SQLite gives the WAL and SHM files the database file's mode; narrow any left over
            // from before with wider bits.
            try StoreFiles.narrow(path + "-wal", mode: fileMode)
            try StoreFiles.narrow(path + "-shm", mode: fileMode)
        } catch let error as DatabaseError {
            throw StoreError(.unavailable, "cannot open consent store \(path): \(error.message ?? error.description)")
        }
    }

    // MARK: writing

    /// Appends records in one durable transaction and returns their sequences. With an
    /// idempotency key, a repeated call with the same payload stores nothing and returns the first
    /// call's result; the same key with a different payload is refused (`.idempotencyConflict`).
    /// Acknowledged (returned) only after the commit is synced.
    /// - Parameter payload: the bytes that identify the request for idempotency (the daemon passes
    ///   the records as they arrived on the wire, so a retry that leaves `recorded_at` to the
    ///   server matches); nil fingerprints the records themselves.
    public func append(_ records: [ConsentRecord], idempotencyKey: String? = nil, payload: [UInt8]? = nil, now: Timestamp = .now()) throws -> AppendResult {
        guard let fingerprint = try StoreRules.prepareAppend(records, idempotencyKey: idempotencyKey, payload: payload, now: now, maximumClockSkew: maximumClockSkew) else {
            return AppendResult(sequences: [], replayed: false)
        }
        return try writeTransaction { db, keys in
            if let idempotencyKey {
                var found: (first: Int64, count: Int64, fingerprint: String?)?
                try db.exactQuery("SELECT first_sequence, count, payload_hash FROM idempotency_keys WHERE key = ?", [.text(idempotencyKey)]) { row in
                    found = (sqlite3_column_int64(row, 0), sqlite3_column_int64(row, 1), columnText(row, 2))
                }
                if let found {
                    if let stored = found.fingerprint, stored != fingerprint {
                        throw StoreRules.idempotencyConflict(idempotencyKey)
                    }
                    return AppendResult(sequences: (0..<max(0, min(found.count, 1 << 20))).map { UInt64(clamping: found.first &+ $0) }, replayed: true)
                }
            }
            let sequences = try insert(records, db: db, keys: &keys, now: now)
            if let idempotencyKey, let first = sequences.first {
                try db.exactExecute("INSERT INTO idempotency_keys (key, first_sequence, count, stored_at, payload_hash) VALUES (?, ?, ?, ?, ?)",
                                    [.text(idempotencyKey), .int(Int64(first)), .int(Int64(sequences.count)), .int(now.microseconds), .text(fingerprint)])
            }
            return AppendResult(sequences: sequences, replayed: false)
        }
    }

    /// Runs one write transaction with a view of the key cache that only becomes shared when the
    /// transaction commits: a rollback (disk full, a failed statement, a failed commit) leaves no
    /// name→id mapping behind, so a freed key id can never be reused under another name.
    /// Refuses every write once `path` no longer names the file the store opened (`fileProblem`).
    func writeTransaction<T>(_ body: (Database, inout KeyCache.Pending) throws -> T) throws -> T {
        var committed: KeyCache.Pending?
        let result = try withDatabaseErrors {
            try pool.write { db -> T in
                if let problem = fileProblem() { throw StoreError(.unavailable, problem + "; nothing was written") }
                var keys = keyCache.begin()
                let value = try body(db, &keys)
                if injectedFailures.withLock({ count in defer { if count > 0 { count -= 1 } }; return count > 0 }) {
                    throw DatabaseError(resultCode: .SQLITE_FULL, message: "database or disk is full (injected by a test)")
                }
                committed = keys
                return value
            }
        }
        // `pool.write` returned: the transaction committed.
        if let committed { keyCache.commit(committed) }
        return result
    }

    /// Why the store's path no longer names the database file the store opened — the file was
    /// deleted, renamed or replaced while it was open — or nil. SQLite would go on writing to the
    /// open file, unreachable by its name: every write would be acknowledged and then lost at the
    /// next start (and another process writing at the path would never be seen).
    /// The same holds for the write-ahead log and the shared-memory index: with the log gone,
    /// writes since the last checkpoint live only in the unlinked file and are lost at the next
    /// start; with either gone, another process opens fresh ones and the two stop seeing each
    /// other's writes. (A file overwritten in place keeps its inode and is not noticed.)
    public func healthProblem() -> String? { fileProblem() }

    /// See `healthProblem`.
    public func fileProblem() -> String? {
        guard let identity = Self.identity(of: path) else {
            return "the consent store file \(path) was removed or renamed while open (\(String(cString: strerror(errno)))): restart consentd to open a store at that path"
        }
        guard identity == fileIdentity else {
            return "the consent store file \(path) was replaced by another file while open: restart consentd to open the file now at that path"
        }
        for companion in companionIdentities {
            let file = path + companion.suffix
            guard let identity = Self.identity(of: file) else {
                return "the consent store's \(companion.name) \(file) was removed or renamed while open (\(String(cString: strerror(errno)))); writes since the last checkpoint are only in the removed file: restart consentd"
            }
            guard identity == (companion.device, companion.inode) else {
                return "the consent store's \(companion.name) \(file) was replaced by another file while open: restart consentd"
            }
        }
        return nil
    }

    /// The device and inode of the file at `path`, or nil (with `errno` set) when there is none.
    private static func identity(of path: String) -> (device: UInt64, inode: UInt64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }

    /// Test hook: the next `count` write transactions fail after all their statements ran and
    /// before they commit, as a full disk would; SQLite rolls them back.
    func failNextWrites(_ count: Int) {
        injectedFailures.withLock { $0 = count }
    }

    /// Test hook: caps the database file at `pages` pages on the writer connection (0: no cap),
    /// so that writes past it fail with SQLITE_FULL for real.
    func setMaximumPageCount(_ pages: Int) throws {
        try withDatabaseErrors {
            try pool.writeWithoutTransaction { db in
                _ = try Int.fetchOne(db, sql: "PRAGMA max_page_count = \(pages > 0 ? pages : 1_073_741_823)")
            }
        }
    }

    /// Pages the database file has now.
    func pageCount() throws -> Int {
        try withDatabaseErrors { try pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0 } }
    }

    /// Inserts records inside an open write transaction; returns the assigned sequences.
    func insert(_ records: [ConsentRecord], db: Database, keys: inout KeyCache.Pending, now: Timestamp) throws -> [UInt64] {
        guard !records.isEmpty else { return [] }
        // Checked against the highest row: a damaged store refuses the write (`StoreRules.checkCounter`).
        var next = try Self.counter(db, location: path)
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
            let purpose = try keys.id(kind: .purpose, name: record.purpose, db: db)
            let data = try record.dataCategory.map { try keys.id(kind: .data, name: $0, db: db) }
            let source = try keys.id(kind: .source, name: record.source, db: db)
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

    /// Runs `body` inside one write transaction; `append` validates and appends records.
    /// Everything commits together (durably) when `body` returns.
    public func importTransaction<T>(now: Timestamp = .now(), _ body: (_ append: ([ConsentRecord]) throws -> [UInt64]) throws -> T) throws -> T {
        try writeTransaction { db, keys in
            try body { records in
                for record in records { try validate(record, now: now) }
                return try insert(records, db: db, keys: &keys, now: now)
            }
        }
    }

    // MARK: erasure

    /// Deletes every record of `subject` and leaves only a tombstone: the keyed hash of the id,
    /// the time and the count. Idempotency keys of writes that stored any of the subject's
    /// records go too, and the WAL is checkpointed and truncated, so that once this returns the
    /// subject's bytes are in neither the database file nor the WAL.
    public func erase(subject: String, now: Timestamp = .now()) throws -> ErasureTombstone {
        try StoreRules.checkSubject(subject)
        let hash = subjectHash(subject)
        let tombstone = try writeTransaction { db, _ in
            // The counter first, checked against the highest row: deleting first could remove the
            // row that shows the store damaged (review: an erasure then took a sequence followers
            // had already applied, and was never applied).
            let sequence = try Self.counter(db, location: path) + 1
            var sequences: [Int64] = []
            try db.exactQuery("SELECT sequence FROM consent_records WHERE subject = ? ORDER BY sequence", [.text(subject)]) { row in
                sequences.append(sqlite3_column_int64(row, 0))
            }
            // A write's sequences are one contiguous run [first, first + count): the key whose
            // run holds an erased sequence is the one with the largest first sequence at or below it.
            for sequence in sequences {
                try db.exactExecute("""
                    DELETE FROM idempotency_keys WHERE key IN (
                        SELECT key FROM idempotency_keys WHERE first_sequence <= ?1 ORDER BY first_sequence DESC LIMIT 1
                    ) AND first_sequence + count > ?1
                    """, [.int(sequence)])
            }
            try db.exactExecute("DELETE FROM consent_records WHERE subject = ?", [.text(subject)])
            try db.execute(sql: "INSERT INTO erasures (sequence, subject_hash, erased_at, record_count, anchor_sequence) VALUES (?, ?, ?, ?, ?)",
                           arguments: [sequence, hash, now.microseconds, sequences.count, sequences.first])
            try db.execute(sql: "UPDATE store_meta SET value = ? WHERE key = 'last_sequence'", arguments: [sequence])
            return ErasureTombstone(sequence: UInt64(sequence), subjectHash: hash, erasedAt: now, recordCount: sequences.count)
        }
        try checkpointAndTruncateWAL()
        return tombstone
    }

    /// Copies the WAL into the database file and truncates it to zero bytes, so that no old page
    /// image (an erased subject's id among them) stays in the WAL. Retries while readers hold
    /// old snapshots, for at most about two seconds.
    public func checkpointAndTruncateWAL() throws {
        for attempt in 0..<200 {
            let busy = try withDatabaseErrors {
                try pool.writeWithoutTransaction { db in
                    try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)").map { ($0[0] as Int64) != 0 } ?? false
                }
            }
            if !busy { return }
            if attempt < 199 { usleep(10_000) }
        }
        throw StoreError(.database, "consent store \(path): the WAL could not be truncated after an erasure (readers kept old snapshots for 2 s); run the erasure again")
    }

    /// The tombstones of `subject`'s erasures, found by recomputing the keyed hash.
    public func erasures(of subject: String) throws -> [ErasureTombstone] {
        try StoreRules.checkSubject(subject)
        let hash = subjectHash(subject)
        return try withDatabaseErrors {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT sequence, erased_at, record_count FROM erasures WHERE subject_hash = ? ORDER BY sequence", arguments: [hash]).map {
                    ErasureTombstone(sequence: UInt64(clamping: $0[0] as Int64), subjectHash: hash, erasedAt: Timestamp(microseconds: $0[1]), recordCount: $0[2])
                }
            }
        }
    }

    /// The tombstones whose keyed subject hash is `hash` (for receipts that carry only the hash).
    public func erasures(hashed hash: String) throws -> [ErasureTombstone] {
        try withDatabaseErrors {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT sequence, erased_at, record_count FROM erasures WHERE subject_hash = ? ORDER BY sequence", arguments: [hash]).map {
                    ErasureTombstone(sequence: UInt64(bitPattern: $0[0] as Int64), subjectHash: hash, erasedAt: Timestamp(microseconds: $0[1]), recordCount: $0[2])
                }
            }
        }
    }

    // MARK: receipts' anchor

    /// The receipts hash chain's head as the daemon last anchored it here (hex), if ever: a
    /// replay finds it in the files, so blocks deleted from their end are noticed.
    public func receiptAnchor() throws -> String? {
        try withDatabaseErrors { try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = 'receipt_anchor'") } }
    }

    /// Anchors the receipts hash chain's head (written by the receipt writer about once a second
    /// and at shutdown, after the block it seals is in the file).
    public func setReceiptAnchor(_ hash: String) throws {
        try withDatabaseErrors {
            try pool.write { db in
                try db.execute(sql: "INSERT INTO store_meta (key, value) VALUES ('receipt_anchor', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", arguments: [hash])
            }
        }
    }

    /// The lines of one receipts log (`ReceiptLog`), oldest first.
    public func receiptLog(_ log: ReceiptLog) throws -> [String] {
        try withDatabaseErrors {
            try pool.read { db in
                try String.fetchAll(db, sql: "SELECT line FROM receipt_log WHERE kind = ? ORDER BY id", arguments: [log.rawValue])
            }
        }
    }

    /// Appends a line to one receipts log, for every later replay to read.
    public func appendReceiptLog(_ log: ReceiptLog, _ text: String) throws {
        try withDatabaseErrors {
            try pool.write { db in
                try db.execute(sql: "INSERT INTO receipt_log (kind, line) VALUES (?, ?)", arguments: [log.rawValue, text.replacingOccurrences(of: "\n", with: " ")])
            }
        }
    }

    /// HMAC-SHA256 of the subject id under this store's erasure key, as lowercase hex.
    public func subjectHash(_ subject: String) -> String { subjectHasher.hash(subject) }

    /// The same of the subject id's bytes (receipts hash every decision's subject with it).
    public func subjectHash(bytes: UnsafeRawBufferPointer) -> String { subjectHasher.hash(bytes: bytes) }

    // MARK: reading

    static let recordColumns = """
        r.subject, r.sequence, p.name, d.name, r.choice, r.recorded_at, r.expires_at, r.legal_basis,
        s.name, r.notice_version, r.jurisdiction, r.evidence, r.stored_at
        """
    static let recordJoins = """
        FROM consent_records r JOIN keys p ON p.id = r.purpose_id LEFT JOIN keys d ON d.id = r.data_id JOIN keys s ON s.id = r.source_id
        """

    /// A record from a row of `recordColumns`, every text read with its length (never up to a NUL).
    static func record(from row: OpaquePointer) -> ConsentRecord {
        ConsentRecord(
            sequence: UInt64(clamping: sqlite3_column_int64(row, 1)), subject: columnText(row, 0) ?? "", purpose: columnText(row, 2) ?? "",
            dataCategory: columnText(row, 3),
            choice: Choice(rawValue: UInt8(truncatingIfNeeded: sqlite3_column_int64(row, 4))) ?? .deny,
            recordedAt: Timestamp(microseconds: sqlite3_column_int64(row, 5)),
            expiresAt: sqlite3_column_type(row, 6) == SQLITE_NULL ? nil : Timestamp(microseconds: sqlite3_column_int64(row, 6)),
            legalBasis: LegalBasis(rawValue: UInt8(truncatingIfNeeded: sqlite3_column_int64(row, 7))) ?? .consent, source: columnText(row, 8) ?? "",
            noticeVersion: sqlite3_column_type(row, 9) == SQLITE_NULL ? nil : UInt32(clamping: sqlite3_column_int64(row, 9)),
            jurisdiction: columnText(row, 10), evidence: columnText(row, 11)
        )
    }

    /// Every record of `subject`, in sequence order.
    public func history(of subject: String) throws -> [ConsentRecord] {
        try StoreRules.checkSubject(subject)
        return try withDatabaseErrors {
            try pool.read { db in
                var records: [ConsentRecord] = []
                try db.exactQuery("SELECT \(Self.recordColumns) \(Self.recordJoins) WHERE r.subject = ? ORDER BY r.sequence", [.text(subject)]) {
                    records.append(Self.record(from: $0))
                }
                return records
            }
        }
    }

    /// The subject's records as the store knew them at `instant`: stored by then and recorded by
    /// then, in sequence order (expired ones included; callers judge validity at the instant).
    public func history(of subject: String, asOf instant: Timestamp) throws -> [ConsentRecord] {
        try StoreRules.checkSubject(subject)
        return try withDatabaseErrors {
            try pool.read { db in
                var records: [ConsentRecord] = []
                try db.exactQuery("SELECT \(Self.recordColumns) \(Self.recordJoins) WHERE r.subject = ? AND r.stored_at <= ? AND r.recorded_at <= ? ORDER BY r.sequence",
                                  [.text(subject), .int(instant.microseconds), .int(instant.microseconds)]) {
                    records.append(Self.record(from: $0))
                }
                return records
            }
        }
    }

    /// Streams every record in sequence order.
    public func forEachRecord(_ body: (ConsentRecord) throws -> Void) throws {
        try withDatabaseErrors {
            try pool.read { db in
                try db.exactQuery("SELECT \(Self.recordColumns) \(Self.recordJoins) ORDER BY r.sequence", []) { try body(Self.record(from: $0)) }
            }
        }
    }

    /// The highest sequence handed out so far (records and erasures share the counter).
    public func lastSequence() throws -> UInt64 {
        try withDatabaseErrors {
            try pool.read { db in UInt64(clamping: try Self.counter(db, location: path)) }
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

/// name → row id of the `keys` table, per kind, as committed; ids never change once committed.
///
/// A write transaction works on a `Pending` copy: ids it interns are shared only after its
/// commit (`commit`), so a rolled-back transaction — whose freed ids SQLite hands to the next
/// new key — leaves no stale mapping behind. Names are compared by bytes (`ExactString`).
final class KeyCache: Sendable {
    private let ids = Mutex<[KeyKind: [ExactString: Int64]]>([:])

    /// The ids interned by one write transaction, on top of the committed ones.
    struct Pending {
        let cache: KeyCache
        var added: [KeyKind: [ExactString: Int64]] = [:]

        mutating func id(kind: KeyKind, name: String, db: Database) throws -> Int64 {
            let key = ExactString(name)
            if let id = added[kind]?[key] { return id }
            if let cached = cache.ids.withLock({ $0[kind]?[key] }) {
                // Checked once per transaction: a file restored in place from an older backup of
                // this store keeps its inode, and its ids may name other keys (review of issue 14:
                // a grant of analytics was stored as personalization).
                var matches = false
                try db.exactQuery("SELECT 1 FROM keys WHERE id = ? AND kind = ? AND name = ?", [.int(cached), .int(kind.rawValue), .text(name)]) { _ in matches = true }
                if matches {
                    added[kind, default: [:]][key] = cached
                    return cached
                }
                cache.ids.withLock { $0 = [:] }
            }
            try db.exactExecute("INSERT OR IGNORE INTO keys (kind, name) VALUES (?, ?)", [.int(kind.rawValue), .text(name)])
            var found: Int64?
            try db.exactQuery("SELECT id FROM keys WHERE kind = ? AND name = ?", [.int(kind.rawValue), .text(name)]) { found = sqlite3_column_int64($0, 0) }
            guard let id = found else { throw StoreError(.database, "could not intern \(name)") }
            added[kind, default: [:]][key] = id
            return id
        }
    }

    func begin() -> Pending { Pending(cache: self) }

    /// Shares a committed transaction's ids.
    func commit(_ pending: Pending) {
        guard !pending.added.isEmpty else { return }
        ids.withLock { ids in
            for (kind, names) in pending.added { ids[kind, default: [:]].merge(names) { $1 } }
        }
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
