import ConsentModel
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// The consent store on PostgreSQL, for a fleet of daemons sharing one source of truth.
///
/// The same store as `SQLiteConsentStore` — the same records, sequences, idempotency keys,
/// erasure tombstones and erasure key — behind the same `ConsentStorage` protocol. Each write
/// is one call of a server-side function (`consentd_append`, `consentd_erase`) that locks the
/// store's one counter row first, so sequences are handed out in commit order; a follower's
/// "changes above my cursor up to the counter" is one statement, one snapshot, and never skips
/// a row that commits later with a smaller sequence (see `PostgresSchema`).
///
/// Two connections: one for writes, one for reads (history, the follower's catch-ups); each is
/// reopened after a failure, and every statement is bounded by `timeout`.
public final class PostgresConsentStore: ConsentStorage {
    /// Where the store is.
    public let address: PostgresAddress
    public var location: String { address.description }
    public let maximumClockSkew: TimeSpan
    /// A random id given to the store when it was created: a daemon that finds another id at
    /// the same address is looking at another store (and loads it whole: `loadSnapshot`).
    public var storeID: String { identity.withLock { $0 }.storeID }
    private let writer: PostgresLink
    private let reader: PostgresLink
    /// NOTIFYs followers after each commit (its own connection, never inside a write).
    private let notifier: FeedNotifier
    private let timeout: TimeAmount
    private let logger: Logger
    /// The store this process is following: replaced whole when a load finds another one.
    private let identity: Mutex<Identity>

    /// What belongs to one store and not to its address: its id, its erasure key, and the ids of
    /// its key names. A write takes one `Identity` for all three, so it never mixes two stores'
    /// (`consentd_append` refuses a write whose id is not the database's).
    final class Identity: Sendable {
        let storeID: String
        let hasher: SubjectHasher
        /// name → id of the `keys` table. Ids come from committed rows only (keys are interned in
        /// a statement of their own before the write that uses them), so no rollback can free one.
        let keyIDs = Mutex<[KeyKind: [ExactString: Int32]]>([:])

        convenience init(storeID: String, erasureKey: String) {
            self.init(storeID: storeID, hasher: SubjectHasher(erasureKey: erasureKey))
        }

        /// The same store with an empty key-id cache.
        init(storeID: String, hasher: SubjectHasher) {
            self.storeID = storeID
            self.hasher = hasher
        }
    }

    /// The migration lock's key (`pg_advisory_xact_lock`): "consentd" in ASCII.
    static let migrationLock: Int64 = 0x636F_6E73_656E_7464

    /// Connects, migrates (creating the schema in an empty database) and reads the erasure key.
    /// - Parameter timeout: the longest any statement (or connecting) may take.
    public init(address: PostgresAddress, maximumClockSkew: TimeSpan = StoreRules.defaultClockSkew,
                timeout: Duration = .seconds(5), logger: Logger = Logger(label: "consentd.store")) throws {
        self.address = address
        self.maximumClockSkew = maximumClockSkew
        let amount = TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        let group = MultiThreadedEventLoopGroup.singleton
        writer = PostgresLink(address: address, applicationName: "consentd-write", timeout: amount, group: group, logger: logger)
        reader = PostgresLink(address: address, applicationName: "consentd-read", timeout: amount, group: group, logger: logger)
        notifier = FeedNotifier(link: PostgresLink(address: address, applicationName: "consentd-notify", timeout: amount, group: group, logger: logger))
        self.timeout = amount
        self.logger = logger
        let (key, id) = try writer.run { session in
            try Self.migrate(session)
            for (name, value) in [("erasure_key", SubjectHasher.freshErasureKey()), ("store_id", UUID().uuidString.lowercased())] {
                try session.query("INSERT INTO store_meta (key, value) VALUES (\(name), \(value)) ON CONFLICT (key) DO NOTHING")
            }
            return try Self.readIdentity(session, address: address)
        }
        identity = Mutex(Identity(storeID: id, erasureKey: key))
    }

    /// The store's erasure key and id, as `store_meta` holds them.
    static func readIdentity(_ session: PostgresLink.Session, address: PostgresAddress) throws -> (key: String, id: String) {
        let rows = try session.query("SELECT key, value FROM store_meta WHERE key IN ('erasure_key', 'store_id')")
        var meta: [String: String] = [:]
        for row in rows {
            let (name, value) = try decode(row, (String, String).self)
            meta[name] = value
        }
        guard let key = meta["erasure_key"], let id = meta["store_id"] else {
            throw StoreError(.unavailable, "the database at \(address) is not a consent store: it has no erasure key or store id")
        }
        return (key, id)
    }

    /// Convenience: parses `uri` first.
    public convenience init(uri: String, maximumClockSkew: TimeSpan = StoreRules.defaultClockSkew, timeout: Duration = .seconds(5)) throws {
        try self.init(address: PostgresAddress(uri), maximumClockSkew: maximumClockSkew, timeout: timeout)
    }

    deinit {
        notifier.flush()
        writer.close()
        reader.close()
    }

    /// Applies the migrations not yet applied, each in its own transaction, under the migration
    /// lock (so two daemons starting at once apply each one once).
    static func migrate(_ session: PostgresLink.Session) throws {
        for (name, sql) in PostgresSchema.migrations {
            try session.query("BEGIN")
            try session.query("SELECT pg_advisory_xact_lock(\(migrationLock))")
            try session.query("CREATE TABLE IF NOT EXISTS consentd_migrations (name text COLLATE \"C\" PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            let applied = try session.query("SELECT 1 FROM consentd_migrations WHERE name = \(name)")
            if applied.isEmpty {
                for statement in SQLStatements.split(sql) { try session.query(PostgresQuery(unsafeSQL: statement)) }
                try session.query("INSERT INTO consentd_migrations (name) VALUES (\(name))")
            }
            try session.query("COMMIT")
        }
    }

    // MARK: writing

    public func append(_ records: [ConsentRecord], idempotencyKey: String? = nil, payload: [UInt8]? = nil, now: Timestamp = .now()) throws -> AppendResult {
        guard let fingerprint = try StoreRules.prepareAppend(records, idempotencyKey: idempotencyKey, payload: payload, now: now, maximumClockSkew: maximumClockSkew) else {
            return AppendResult(sequences: [], replayed: false)
        }
        let result = try insert(records, idempotencyKey: idempotencyKey, fingerprint: fingerprint, now: now)
        if result.conflict {
            throw StoreRules.idempotencyConflict(idempotencyKey ?? "")
        }
        return AppendResult(sequences: result.sequences, replayed: result.replayed)
    }

    /// One `consentd_append_keyed` call: the records and the key in one transaction, the key ids
    /// checked against their names. Ids cached from another generation of this store (a restored
    /// backup) are refused by the server before anything is written: the cache is dropped and
    /// the write sent once more.
    private func insert(_ records: [ConsentRecord], idempotencyKey: String?, fingerprint: String, now: Timestamp) throws -> (sequences: [UInt64], replayed: Bool, conflict: Bool) {
        do {
            return try insertOnce(records, idempotencyKey: idempotencyKey, fingerprint: fingerprint, now: now)
        } catch let error as StoreError where error.code == .staleKeyIDs {
            identity.withLock { current in current = Identity(storeID: current.storeID, hasher: current.hasher) }
            logger.warning("the consent store's key ids changed under this process (restored from a backup?); looked them up again")
            return try insertOnce(records, idempotencyKey: idempotencyKey, fingerprint: fingerprint, now: now)
        }
    }

    private func insertOnce(_ records: [ConsentRecord], idempotencyKey: String?, fingerprint: String, now: Timestamp) throws -> (sequences: [UInt64], replayed: Bool, conflict: Bool) {
        let store = identity.withLock { $0 }
        let ids = try internKeys(records, store)
        var keyKinds: [Int16] = [], keyIDs: [Int32] = [], keyNames: [String] = []
        var listed = Set<ExactString>()
        func list(_ kind: KeyKind, _ name: String) {
            guard listed.insert(ExactString("\(kind.rawValue):" + name)).inserted else { return }
            keyKinds.append(Int16(kind.rawValue))
            keyIDs.append(ids[kind]![ExactString(name)]!)
            keyNames.append(name)
        }
        for record in records {
            list(.purpose, record.purpose)
            if let data = record.dataCategory { list(.data, data) }
            list(.source, record.source)
        }
        var subjects: [ByteBuffer] = [], purposes: [Int32] = [], data: [Int32] = [], choices: [Int16] = []
        var recorded: [Int64] = [], expires: [Int64] = [], bases: [Int16] = [], sources: [Int32] = []
        var notices: [Int64] = [], jurisdictions: [String] = [], evidence: [String] = [], hasEvidence: [Bool] = []
        for record in records {
            subjects.append(ByteBuffer(string: record.subject))
            purposes.append(ids[.purpose]![ExactString(record.purpose)]!)
            data.append(record.dataCategory.map { ids[.data]![ExactString($0)]! } ?? 0)
            choices.append(Int16(record.choice.rawValue))
            recorded.append(record.recordedAt.microseconds)
            expires.append(record.expiresAt?.microseconds ?? .min)
            bases.append(Int16(record.legalBasis.rawValue))
            sources.append(ids[.source]![ExactString(record.source)]!)
            notices.append(record.noticeVersion.map { Int64($0) } ?? -1)
            jurisdictions.append(record.jurisdiction ?? "")
            evidence.append(record.evidence ?? "")
            hasEvidence.append(record.evidence != nil)
        }
        let key = idempotencyKey.map { ByteBuffer(string: $0) }
        let rows = try writer.run { session in
            try session.query("""
                SELECT first_sequence, record_count, replayed, conflict FROM consentd_append_keyed(
                    \(keyKinds), \(keyIDs), \(keyNames), \(store.storeID), \(key), \(fingerprint), \(now.microseconds), \(subjects), \(purposes), \(data), \(choices),
                    \(recorded), \(expires), \(bases), \(sources), \(notices), \(jurisdictions), \(evidence), \(hasEvidence))
                """)
        }
        guard let row = rows.first else { throw StoreError(.database, "consent store \(address): consentd_append returned no row") }
        let (first, count, replayed, conflict) = try Self.decode(row, (Int64, Int32, Bool, Bool).self)
        let sequences = (0..<Int64(max(0, min(count, 1 << 20)))).map { UInt64(clamping: first &+ $0) }
        if !replayed, let last = sequences.last { notifier.committed(head: last) }
        return (sequences, replayed, conflict)
    }

    /// The `keys` ids of every name the records use, interning new names in a statement of their
    /// own (committed before the write that uses them). Ids are learnt only from the store
    /// `store` names, so a cache never holds another store's ids.
    private func internKeys(_ records: [ConsentRecord], _ store: Identity) throws -> [KeyKind: [ExactString: Int32]] {
        var wanted: [KeyKind: Set<ExactString>] = [:]
        for record in records {
            wanted[.purpose, default: []].insert(ExactString(record.purpose))
            if let data = record.dataCategory { wanted[.data, default: []].insert(ExactString(data)) }
            wanted[.source, default: []].insert(ExactString(record.source))
        }
        let known = store.keyIDs.withLock { $0 }
        var kinds: [Int16] = [], names: [String] = []
        for (kind, set) in wanted {
            for name in set where known[kind]?[name] == nil {
                kinds.append(Int16(kind.rawValue))
                names.append(name.value)
            }
        }
        if !names.isEmpty {
            let rows = try writer.run { session -> PostgresQueryResult in
                try session.query("INSERT INTO keys (kind, name) SELECT * FROM unnest(\(kinds), \(names)) ON CONFLICT (kind, name) DO NOTHING")
                let found = try session.query("SELECT value FROM store_meta WHERE key = 'store_id'")
                try checkIdentity(try found.first.map { try Self.decode($0, String.self) }, store)
                return try session.query("SELECT k.id, k.kind, k.name FROM keys k JOIN unnest(\(kinds), \(names)) AS w(kind, name) ON k.kind = w.kind AND k.name = w.name")
            }
            var learned: [(KeyKind, ExactString, Int32)] = []
            for row in rows {
                let (id, kind, name) = try Self.decode(row, (Int32, Int16, String).self)
                guard let kind = KeyKind(rawValue: Int64(kind)) else { continue }
                learned.append((kind, ExactString(name), id))
            }
            store.keyIDs.withLock { ids in
                for (kind, name, id) in learned { ids[kind, default: [:]][name] = id }
            }
        }
        let ids = store.keyIDs.withLock { $0 }
        for (kind, set) in wanted {
            for name in set where ids[kind]?[name] == nil {
                throw StoreError(.database, "consent store \(address): could not intern \(kind) '\(name.value)'")
            }
        }
        return ids
    }

    public func importTransaction<T>(now: Timestamp = .now(), _ body: (_ append: ([ConsentRecord]) throws -> [UInt64]) throws -> T) throws -> T {
        // Each batch is one `consentd_append` call (one transaction) — a strict import that
        // fails part-way leaves the batches already appended; see README.
        try body { records in
            for record in records { try validate(record, now: now) }
            guard !records.isEmpty else { return [] }
            var sequences: [UInt64] = []
            sequences.reserveCapacity(records.count)
            var start = 0
            while start < records.count {
                let end = min(records.count, start + 20_000)
                sequences += try insert(Array(records[start..<end]), idempotencyKey: nil, fingerprint: "", now: now).sequences
                start = end
            }
            return sequences
        }
    }

    // MARK: erasure

    public func erase(subject: String, now: Timestamp = .now()) throws -> ErasureTombstone {
        try StoreRules.checkSubject(subject)
        let store = identity.withLock { $0 }
        let hash = store.hasher.hash(subject)
        let rows = try writer.run { session in
            try session.query("SELECT erasure_sequence, record_count FROM consentd_erase(\(store.storeID), \(ByteBuffer(string: subject)), \(hash), \(now.microseconds))")
        }
        guard let row = rows.first else { throw StoreError(.database, "consent store \(address): consentd_erase returned no row") }
        let (sequence, count) = try Self.decode(row, (Int64, Int32).self)
        notifier.committed(head: UInt64(clamping: sequence))
        return ErasureTombstone(sequence: UInt64(clamping: sequence), subjectHash: hash, erasedAt: now, recordCount: Int(count))
    }

    public func erasures(of subject: String) throws -> [ErasureTombstone] {
        try StoreRules.checkSubject(subject)
        return try erasures(hashed: subjectHash(subject))
    }

    public func erasures(hashed hash: String) throws -> [ErasureTombstone] {
        let rows = try reader.run { session in
            try session.query("SELECT sequence, erased_at, record_count FROM erasures WHERE subject_hash = \(hash) ORDER BY sequence")
        }
        return try rows.map { row in
            let (sequence, erasedAt, count) = try Self.decode(row, (Int64, Int64, Int32).self)
            return ErasureTombstone(sequence: UInt64(clamping: sequence), subjectHash: hash, erasedAt: Timestamp(microseconds: erasedAt), recordCount: Int(count))
        }
    }

    // MARK: receipts' anchor

    public func receiptAnchor() throws -> String? { try meta("receipt_anchor") }

    public func setReceiptAnchor(_ hash: String) throws {
        try writer.run { session in
            try session.query("INSERT INTO store_meta (key, value) VALUES ('receipt_anchor', \(hash)) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        }
    }

    public func receiptLog(_ log: ReceiptLog) throws -> [String] {
        let rows = try reader.run { session in try session.query("SELECT line FROM receipt_log WHERE kind = \(log.rawValue) ORDER BY id") }
        return try rows.map { try Self.decode($0, String.self) }
    }

    public func appendReceiptLog(_ log: ReceiptLog, _ text: String) throws {
        let line = text.replacingOccurrences(of: "\n", with: " ")
        try writer.run { session in
            try session.query("INSERT INTO receipt_log (kind, line) VALUES (\(log.rawValue), \(line))")
        }
    }

    private func meta(_ key: String) throws -> String? {
        let rows = try reader.run { session in try session.query("SELECT value FROM store_meta WHERE key = \(key)") }
        return try rows.first.map { try Self.decode($0, String.self) }
    }

    // MARK: hashing

    public func subjectHash(_ subject: String) -> String { identity.withLock { $0 }.hasher.hash(subject) }
    public func subjectHash(bytes: UnsafeRawBufferPointer) -> String { identity.withLock { $0 }.hasher.hash(bytes: bytes) }

    // MARK: reading

    static let recordColumns = """
        r.subject, r.sequence, p.name, d.name, r.choice, r.recorded_at, r.expires_at, r.legal_basis,
        s.name, r.notice_version, r.jurisdiction, r.evidence
        """
    static let recordJoins = """
        FROM consent_records r JOIN keys p ON p.id = r.purpose_id LEFT JOIN keys d ON d.id = r.data_id JOIN keys s ON s.id = r.source_id
        """

    static func record(_ row: PostgresRow) throws -> ConsentRecord {
        let (subject, sequence, purpose, data, choice, recordedAt, expiresAt, basis, source, notice, jurisdiction, evidence) =
            try decode(row, (ByteBuffer, Int64, String, String?, Int16, Int64, Int64?, Int16, String, Int64?, String?, String?).self)
        return ConsentRecord(
            sequence: UInt64(clamping: sequence), subject: String(decoding: subject.readableBytesView, as: UTF8.self), purpose: purpose,
            dataCategory: data, choice: Choice(rawValue: UInt8(truncatingIfNeeded: choice)) ?? .deny,
            recordedAt: Timestamp(microseconds: recordedAt), expiresAt: expiresAt.map { Timestamp(microseconds: $0) },
            legalBasis: LegalBasis(rawValue: UInt8(truncatingIfNeeded: basis)) ?? .consent, source: source,
            noticeVersion: notice.map { UInt32(clamping: $0) }, jurisdiction: jurisdiction, evidence: evidence
        )
    }

    public func history(of subject: String) throws -> [ConsentRecord] {
        try StoreRules.checkSubject(subject)
        let rows = try reader.run { session in
            try session.query("SELECT \(unescaped: Self.recordColumns) \(unescaped: Self.recordJoins) WHERE r.subject = \(ByteBuffer(string: subject)) ORDER BY r.sequence")
        }
        return try rows.map(Self.record)
    }

    public func history(of subject: String, asOf instant: Timestamp) throws -> [ConsentRecord] {
        try StoreRules.checkSubject(subject)
        let rows = try reader.run { session in
            try session.query("""
                SELECT \(unescaped: Self.recordColumns) \(unescaped: Self.recordJoins)
                WHERE r.subject = \(ByteBuffer(string: subject)) AND r.stored_at <= \(instant.microseconds) AND r.recorded_at <= \(instant.microseconds)
                ORDER BY r.sequence
                """)
        }
        return try rows.map(Self.record)
    }

    public func forEachRecord(_ body: (ConsentRecord) throws -> Void) throws {
        var after: Int64 = 0
        while true {
            let rows = try reader.run { session in
                try session.query("SELECT \(unescaped: Self.recordColumns) \(unescaped: Self.recordJoins) WHERE r.sequence > \(after) ORDER BY r.sequence LIMIT 10000")
            }
            if rows.isEmpty { return }
            for row in rows {
                let record = try Self.record(row)
                try body(record)
                after = Int64(clamping: record.sequence)
            }
        }
    }

    /// The counter, read with the store's id and the highest stored row, in one statement: a
    /// database replaced under this store is `.storeChanged` (a follower loads it whole), never
    /// "the head moved"; a counter below a stored row is a damaged store (`StoreRules.checkCounter`).
    public func lastSequence() throws -> UInt64 {
        let rows = try reader.run { session in try session.query(Self.counterQuery) }
        guard let row = rows.first else { throw StoreError(.database, "consent store \(address): no counter row") }
        let (head, id, highest) = try Self.decode(row, (Int64, String?, Int64).self)
        try checkIdentity(id)
        try StoreRules.checkCounter(head, highestRow: highest, location: location)
        return UInt64(clamping: head)
    }

    /// The counter, the store id and the highest sequence of any record or erasure.
    static let counterQuery: PostgresQuery = """
        SELECT c.last_sequence, (SELECT m.value FROM store_meta m WHERE m.key = 'store_id'),
               greatest(coalesce((SELECT max(sequence) FROM consent_records), 0), coalesce((SELECT max(sequence) FROM erasures), 0))
        FROM store_counter c WHERE c.one
        """

    /// Throws `.storeChanged` unless `id` is the id of the store this process follows (`store`,
    /// or the current one).
    func checkIdentity(_ id: String?, _ store: Identity? = nil) throws {
        let expected = (store ?? identity.withLock { $0 }).storeID
        guard id == expected else {
            throw StoreError(.storeChanged, "the database at \(address) is another consent store now (store id \(id ?? "none"), this process followed \(expected))")
        }
    }

    public func recordCount() throws -> Int {
        let rows = try reader.run { session in try session.query("SELECT count(*) FROM consent_records") }
        return Int(try rows.first.map { try Self.decode($0, Int64.self) } ?? Int64(0))
    }

    /// A connection that LISTENs for other daemons' commits and calls `wake` on each (and
    /// whenever it had to reconnect), until stopped.
    public func watchChanges(_ wake: @escaping @Sendable () -> Void) -> (any ChangeWatch)? {
        PostgresListener(address: address, timeout: timeout, logger: logger, wake: wake)
    }

    /// Nothing local can go missing under a PostgreSQL store; connection failures are reported
    /// by the calls that meet them.
    public func healthProblem() -> String? { nil }

    // MARK: following

    public func keyMapper(for vocabulary: Vocabulary) -> KeyMapperHandle {
        KeyMapperHandle(mapper: KeyMapper(vocabulary: vocabulary))
    }

    /// Reads the whole `keys` table into `mapper` (key ids are not handed out in commit order,
    /// so they are looked up, never followed).
    private func learnKeys(_ session: PostgresLink.Session, _ mapper: KeyMapper) throws {
        var rows: [(id: Int64, kind: Int64, name: String)] = []
        for row in try session.query("SELECT id, kind, name FROM keys") {
            let (id, kind, name) = try Self.decode(row, (Int32, Int16, String).self)
            rows.append((Int64(id), Int64(kind), name))
        }
        try mapper.learn(rows)
    }

    public func loadSnapshot(into handle: KeyMapperHandle) throws -> ConsentSnapshot {
        let mapper = handle.mapper
        return try reader.run { session in
            try session.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            guard let counter = try session.query(Self.counterQuery).first else {
                throw StoreError(.database, "consent store \(address): no counter row")
            }
            let (head, _, highest) = try Self.decode(counter, (Int64, String?, Int64).self)
            try StoreRules.checkCounter(head, highestRow: highest, location: location)
            // The store whole, whichever it is: another store at this address (dropped and
            // recreated, restored from another store's backup) becomes the one followed, with its
            // own erasure key and key ids — `mapper` must be a fresh one then (`ConsentFeed.reload`).
            let (key, id) = try Self.readIdentity(session, address: address)
            // Another store, or another generation of this one (a restored backup): key ids are
            // looked up afresh either way.
            let loaded = Identity(storeID: id, erasureKey: key)
            try learnKeys(session, mapper)
            let (purposes, data, sources) = mapper.tables()
            var builder = ConsentSnapshotBuilder()
            var after: (subject: ByteBuffer, sequence: Int64)?
            while true {
                let rows: PostgresQueryResult
                let columns = "subject, sequence, purpose_id, data_id, choice, recorded_at, expires_at, legal_basis, source_id, notice_version"
                if let after {
                    rows = try session.query("""
                        SELECT \(unescaped: columns) FROM consent_records
                        WHERE (subject, sequence) > (\(after.subject), \(after.sequence)) AND sequence <= \(head)
                        ORDER BY subject, sequence LIMIT 50000
                        """)
                } else {
                    rows = try session.query("SELECT \(unescaped: columns) FROM consent_records WHERE sequence <= \(head) ORDER BY subject, sequence LIMIT 50000")
                }
                if rows.isEmpty { break }
                for row in rows {
                    let (subject, sequence, purpose, dataID, choice, recordedAt, expiresAt, basis, source, notice) =
                        try Self.decode(row, (ByteBuffer, Int64, Int32, Int32?, Int16, Int64, Int64?, Int16, Int32, Int64?).self)
                    let record = KeyMapper.compactRecord(
                        sequence: sequence, purpose: Int64(purpose), data: dataID.map(Int64.init), choice: Int64(choice), recordedAt: recordedAt,
                        expiresAt: expiresAt, legalBasis: Int64(basis), source: Int64(source), noticeVersion: notice,
                        purposes: purposes, dataCategories: data, sources: sources
                    )
                    subject.withUnsafeReadableBytes { builder.add(subject: $0, record) }
                    after = (subject, sequence)
                }
            }
            try session.query("COMMIT")
            builder.covers(through: UInt64(clamping: head))
            let previous = identity.withLock { current in
                defer { current = loaded }
                return current.storeID
            }
            if previous != id {
                logger.warning("the database at \(address) is another consent store now (store id \(id), was \(previous)): loaded it whole")
            }
            return builder.build()
        }
    }

    public func changes(after sequence: UInt64, limit: Int = 20_000, mapper handle: KeyMapperHandle) throws -> (changes: [ConsentChange], through: UInt64) {
        let mapper = handle.mapper
        let cursor = Int64(clamping: sequence)
        return try reader.run { session in
            // One statement, one snapshot: the counter and every row at or below it.
            let rows = try session.query("""
                SELECT c.last_sequence, u.sequence, u.subject, u.purpose_id, u.data_id, u.choice, u.recorded_at, u.expires_at,
                       u.legal_basis, u.source_id, u.notice_version, u.anchor, u.erasure,
                       (SELECT m.value FROM store_meta m WHERE m.key = 'store_id')
                FROM store_counter c LEFT JOIN LATERAL (
                    SELECT * FROM (
                        SELECT r.sequence, r.subject, r.purpose_id, r.data_id, r.choice, r.recorded_at, r.expires_at, r.legal_basis,
                               r.source_id, r.notice_version, NULL::bigint AS anchor, false AS erasure
                        FROM consent_records r WHERE r.sequence > \(cursor) AND r.sequence <= c.last_sequence
                        UNION ALL
                        SELECT e.sequence, NULL::bytea, NULL::integer, NULL::integer, NULL::smallint, NULL::bigint, NULL::bigint, NULL::smallint,
                               NULL::integer, NULL::bigint, e.anchor_sequence, true
                        FROM erasures e WHERE e.sequence > \(cursor) AND e.sequence <= c.last_sequence
                    ) AS both_kinds ORDER BY sequence LIMIT \(Int64(limit))
                ) AS u ON true
                WHERE c.one
                """)
            typealias Row = (Int64, Int64?, ByteBuffer?, Int32?, Int32?, Int16?, Int64?, Int64?, Int16?, Int32?, Int64?, Int64?, Bool?, String?)
            let decoded: [Row] = try rows.map { try Self.decode($0, Row.self) }
            guard let head = decoded.first?.0 else { return ([], sequence) }
            try checkIdentity(decoded.first?.13)
            var through = UInt64(clamping: head)
            // A head below `sequence` is returned as it is: the follower must not take it for "current".
            guard through > sequence else { return ([], through) }
            let unknown = decoded.contains { row in
                guard row.12 == false, let purpose = row.3, let source = row.9 else { return false }
                return !mapper.knows(purpose: Int64(purpose), data: row.4.map(Int64.init), source: Int64(source))
            }
            if unknown { try learnKeys(session, mapper) }
            let (purposes, data, sources) = mapper.tables()
            var changes: [ConsentChange] = []
            changes.reserveCapacity(decoded.count)
            var last: Int64 = cursor
            for row in decoded {
                guard let rowSequence = row.1 else { continue }
                last = rowSequence
                if row.12 == true {
                    if let anchor = row.11 { changes.append(.erasureOf(anchorSequence: UInt64(clamping: anchor))) }
                    continue
                }
                guard let subject = row.2, let purpose = row.3, let choice = row.5, let recordedAt = row.6, let basis = row.8, let source = row.9 else {
                    throw StoreError(.database, "consent store \(address): record #\(rowSequence) has missing columns")
                }
                let record = KeyMapper.compactRecord(
                    sequence: rowSequence, purpose: Int64(purpose), data: row.4.map(Int64.init), choice: Int64(choice), recordedAt: recordedAt,
                    expiresAt: row.7, legalBasis: Int64(basis), source: Int64(source), noticeVersion: row.10,
                    purposes: purposes, dataCategories: data, sources: sources
                )
                changes.append(.record(subject: String(decoding: subject.readableBytesView, as: UTF8.self), record))
            }
            if decoded.count == limit { through = UInt64(clamping: last) }
            return (changes, through)
        }
    }

    /// Decodes a row, a decoding failure (a column of another type: not a consentd store, or a
    /// newer schema) becoming a store error.
    static func decode<each Column: PostgresDecodable>(_ row: PostgresRow, _ type: (repeat each Column).Type) throws -> (repeat each Column) {
        do {
            return try row.decode(type)
        } catch {
            throw StoreError(.database, "a consent store row could not be read: \(error)")
        }
    }
}
