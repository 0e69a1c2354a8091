import ConsentModel
import GRDB
import GRDBSQLite
import Synchronization

/// Maps the store's `keys` row ids to the process's vocabulary ids, growing as new keys appear.
final class KeyMapper: Sendable {
    private struct State {
        var purposes: [UInt32] = []
        var data: [UInt32] = []
        var sources: [UInt32] = []
        var maxID: Int64 = 0
    }
    private let state = Mutex(State())
    let vocabulary: Vocabulary

    init(vocabulary: Vocabulary) { self.vocabulary = vocabulary }

    /// Reads keys added since the last refresh (SQLite: one writer at a time hands out row ids in
    /// commit order, so "above the largest id seen" misses none).
    func refresh(_ db: Database) throws {
        let since = state.withLock { $0.maxID }
        var rows: [(id: Int64, kind: Int64, name: String)] = []
        try db.exactQuery("SELECT id, kind, name FROM keys WHERE id > ? ORDER BY id", [.int(since)]) { row in
            rows.append((sqlite3_column_int64(row, 0), sqlite3_column_int64(row, 1), columnText(row, 2) ?? ""))
        }
        try learn(rows)
    }

    /// Adds store keys (id, kind, name) to the maps.
    func learn(_ rows: [(id: Int64, kind: Int64, name: String)]) throws {
        var resolved: [(Int64, Int64, UInt32)] = []
        for (id, kind, name) in rows {
            // Row ids index arrays: a foreign writer's negative or huge id is not followed.
            guard id >= 0, id < 1 << 24 else { throw StoreError(.database, "keys table holds an id out of range (\(id)); not a consentd store?") }
            let table: KeyTable = kind == KeyKind.purpose.rawValue ? vocabulary.purposes : kind == KeyKind.data.rawValue ? vocabulary.dataCategories : vocabulary.sources
            resolved.append((id, kind, table.intern(name)))
        }
        guard !resolved.isEmpty else { return }
        state.withLock { state in
            for (id, kind, vocabularyID) in resolved {
                func put(_ array: inout [UInt32]) {
                    if array.count <= Int(id) { array += [UInt32](repeating: .max, count: Int(id) + 1 - array.count) }
                    array[Int(id)] = vocabularyID
                }
                switch kind {
                case KeyKind.purpose.rawValue: put(&state.purposes)
                case KeyKind.data.rawValue: put(&state.data)
                default: put(&state.sources)
                }
                state.maxID = max(state.maxID, id)
            }
        }
    }

    /// Whether every id is mapped (nil: no data category).
    func knows(purpose: Int64, data: Int64?, source: Int64) -> Bool {
        state.withLock { state in
            func known(_ array: [UInt32], _ id: Int64) -> Bool { id >= 0 && Int(id) < array.count && array[Int(id)] != .max }
            return known(state.purposes, purpose) && (data.map { known(state.data, $0) } ?? true) && known(state.sources, source)
        }
    }

    /// The index's form of a stored record's columns (store key ids mapped through `tables()`):
    /// the one reading of a record row, whichever engine it came from.
    @inline(__always)
    static func compactRecord(
        sequence: Int64, purpose: Int64, data: Int64?, choice: Int64, recordedAt: Int64, expiresAt: Int64?,
        legalBasis: Int64, source: Int64, noticeVersion: Int64?, purposes: [UInt32], dataCategories: [UInt32], sources: [UInt32]
    ) -> CompactRecord {
        func map(_ table: [UInt32], _ id: Int64) -> UInt32 { id >= 0 && Int(id) < table.count ? table[Int(id)] : .max }
        return CompactRecord(
            purpose: map(purposes, purpose),
            dataCategory: data.map { map(dataCategories, $0) } ?? CompactRecord.allData,
            choice: Choice(rawValue: UInt8(truncatingIfNeeded: choice)) ?? .deny,
            legalBasis: LegalBasis(rawValue: UInt8(truncatingIfNeeded: legalBasis)) ?? .consent,
            recordedAt: Timestamp(microseconds: recordedAt),
            expiresAt: expiresAt.map { Timestamp(microseconds: $0) } ?? .distantFuture,
            sequence: UInt64(clamping: sequence),
            source: map(sources, source),
            noticeVersion: noticeVersion.map { UInt32(clamping: $0) } ?? CompactRecord.noNotice
        )
    }

    /// A consistent copy of the id maps for a bulk read.
    func tables() -> (purposes: [UInt32], data: [UInt32], sources: [UInt32]) {
        state.withLock { ($0.purposes, $0.data, $0.sources) }
    }
}

extension SQLiteConsentStore {
    /// The sequence counter, checked against the highest stored row (`StoreRules.checkCounter`).
    static func counter(_ db: Database, location: String) throws -> Int64 {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT (SELECT value FROM store_meta WHERE key = 'last_sequence'),
                   max(coalesce((SELECT max(sequence) FROM consent_records), 0), coalesce((SELECT max(sequence) FROM erasures), 0))
            """) else { return 0 }
        let counter: Int64 = row[0] ?? 0
        try StoreRules.checkCounter(counter, highestRow: row[1], location: location)
        return counter
    }

    /// Reads every record into a fresh snapshot (start-up). Subjects come out of the clustered
    /// table in order, and rows are read with the raw SQLite API without making strings.
    public func loadSnapshot(into mapper: KeyMapperHandle) throws -> ConsentSnapshot {
        try withDatabaseErrors {
            try pool.read { db in
                try mapper.mapper.refresh(db)
                let (purposes, data, sources) = mapper.mapper.tables()
                let through = try Self.counter(db, location: path)
                var builder = ConsentSnapshotBuilder()
                let statement = try db.makeStatement(sql: """
                    SELECT subject, sequence, purpose_id, data_id, choice, recorded_at, expires_at, legal_basis, source_id, notice_version
                    FROM consent_records
                    """)
                let handle = statement.sqliteStatement
                while true {
                    let code = sqlite3_step(handle)
                    if code == SQLITE_DONE { break }
                    guard code == SQLITE_ROW else {
                        throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))))
                    }
                    let record = Self.compactRecord(handle, purposes: purposes, data: data, sources: sources)
                    let bytes = sqlite3_column_text(handle, 0)
                    let count = Int(sqlite3_column_bytes(handle, 0))
                    builder.add(subject: UnsafeRawBufferPointer(start: bytes, count: count), record)
                }
                builder.covers(through: UInt64(clamping: through))
                return builder.build()
            }
        }
    }

    @inline(__always)
    static func compactRecord(_ handle: OpaquePointer?, purposes: [UInt32], data: [UInt32], sources: [UInt32]) -> CompactRecord {
        KeyMapper.compactRecord(
            sequence: sqlite3_column_int64(handle, 1), purpose: sqlite3_column_int64(handle, 2),
            data: sqlite3_column_type(handle, 3) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, 3),
            choice: sqlite3_column_int64(handle, 4), recordedAt: sqlite3_column_int64(handle, 5),
            expiresAt: sqlite3_column_type(handle, 6) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, 6),
            legalBasis: sqlite3_column_int64(handle, 7), source: sqlite3_column_int64(handle, 8),
            noticeVersion: sqlite3_column_type(handle, 9) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, 9),
            purposes: purposes, dataCategories: data, sources: sources
        )
    }

    /// Changes committed after `sequence`, in store order, up to `limit` records, and the sequence
    /// they bring a follower to. Read in one transaction, so the result is a consistent cut.
    public func changes(after sequence: UInt64, limit: Int = 20_000, mapper: KeyMapperHandle) throws -> (changes: [ConsentChange], through: UInt64) {
        try withDatabaseErrors {
            try pool.read { db in
                var through = UInt64(clamping: try Self.counter(db, location: path))
                // A head below `sequence` is returned as it is: the follower must not take it for "current".
                guard through > sequence else { return ([], through) }
                try mapper.mapper.refresh(db)
                let (purposes, data, sources) = mapper.mapper.tables()
                var records: [(UInt64, ConsentChange)] = []
                let statement = try db.makeStatement(sql: """
                    SELECT subject, sequence, purpose_id, data_id, choice, recorded_at, expires_at, legal_basis, source_id, notice_version
                    FROM consent_records WHERE sequence > ? AND sequence <= ? ORDER BY sequence LIMIT ?
                    """)
                try statement.setArguments([Int64(sequence), Int64(through), limit])
                let handle = statement.sqliteStatement
                while sqlite3_step(handle) == SQLITE_ROW {
                    let record = Self.compactRecord(handle, purposes: purposes, data: data, sources: sources)
                    let subject = columnText(handle, 0) ?? ""
                    records.append((record.sequence, .record(subject: subject, record)))
                }
                if records.count == limit, let last = records.last?.0 { through = last }
                let erasures = try Row.fetchAll(db, sql: "SELECT sequence, anchor_sequence FROM erasures WHERE sequence > ? AND sequence <= ? ORDER BY sequence",
                                                arguments: [Int64(sequence), Int64(through)])
                for row in erasures {
                    let erased = UInt64(clamping: row[0] as Int64)
                    if let anchor = row[1] as Int64? { records.append((erased, .erasureOf(anchorSequence: UInt64(clamping: anchor)))) }
                }
                records.sort { $0.0 < $1.0 }
                return (records.map(\.1), through)
            }
        }
    }

    /// A key mapper for this store and `vocabulary`, shared by a loader and its follower.
    public func keyMapper(for vocabulary: Vocabulary) -> KeyMapperHandle {
        KeyMapperHandle(mapper: KeyMapper(vocabulary: vocabulary))
    }
}

/// Opaque handle to a store-id → vocabulary-id mapper.
public struct KeyMapperHandle: Sendable {
    let mapper: KeyMapper
}
