import ConsentModel
import Crypto
import Foundation

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

/// The rules every consent store applies the same way, whatever holds the records.
public enum StoreRules {
    /// The default `maximumClockSkew`: 5 minutes.
    public static let defaultClockSkew = TimeSpan(microseconds: 300_000_000)

    /// Validates a record before it is stored: identifiers by `Identifier`'s rule, keys and
    /// sources without control characters, times in 0001…9999 and `recorded_at` at most
    /// `maximumClockSkew` after `now`.
    public static func validate(_ record: ConsentRecord, now: Timestamp, maximumClockSkew: TimeSpan) throws {
        try validate(record)
        guard record.recordedAt <= now.adding(maximumClockSkew) else {
            throw StoreError(.invalidRecord, "recorded_at (\(record.recordedAt)) is more than \(maximumClockSkew) after the store's clock (\(now)); a choice cannot be made in the future")
        }
    }

    /// Refuses an invalid subject id (`Identifier.subjectProblem`): every read and write by
    /// subject checks it, so an invalid id is an error, never "no records".
    public static func checkSubject(_ subject: String) throws(StoreError) {
        if let problem = Identifier.subjectProblem(subject) { throw StoreError(.invalidRecord, problem) }
    }

    /// The checks of `validate(_:now:)` that need no clock.
    public static func validate(_ record: ConsentRecord) throws {
        try checkSubject(record.subject)
        if let problem = Identifier.problem(record.purpose) {
            throw StoreError(.invalidRecord, "purpose \(problem)")
        }
        if let data = record.dataCategory, let problem = Identifier.problem(data) {
            throw StoreError(.invalidRecord, "data category \(problem)")
        }
        guard record.recordedAt.isInValidRange else {
            throw StoreError(.invalidRecord, "recorded_at (\(record.recordedAt)) must lie in 0001-01-01…9999-12-31")
        }
        if let expires = record.expiresAt {
            guard expires.isInValidRange else {
                throw StoreError(.invalidRecord, "expires_at (\(expires)) must lie in 0001-01-01…9999-12-31")
            }
            guard expires > record.recordedAt else {
                throw StoreError(.invalidRecord, "expires (\(expires)) must be after the time the choice was made (\(record.recordedAt))")
            }
        }
        if let problem = Identifier.problem(record.source, maximum: ConsentRecord.maximumSourceBytes) {
            throw StoreError(.invalidRecord, "source \(problem)")
        }
        if record.noticeVersion == CompactRecord.noNotice {
            throw StoreError(.invalidRecord, "notice version must be below \(CompactRecord.noNotice) (that value means \"unknown\")")
        }
        if let jurisdiction = record.jurisdiction {
            guard !jurisdiction.isEmpty, jurisdiction.utf8.count <= 16, jurisdiction.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw StoreError(.invalidRecord, "jurisdiction must be 1 to 16 printable ASCII characters (an ISO 3166 code such as DE or US-CA)")
            }
        }
        if let evidence = record.evidence {
            guard evidence.utf8.count <= ConsentRecord.maximumEvidenceBytes else {
                throw StoreError(.invalidRecord, "evidence reference must be at most \(ConsentRecord.maximumEvidenceBytes) bytes")
            }
            guard !evidence.utf8.contains(0) else {
                throw StoreError(.invalidRecord, "evidence reference must not contain NUL bytes")
            }
        }
    }

    /// Validates an idempotency key: the same rule as subject ids (`Identifier`).
    public static func validate(idempotencyKey key: String) throws {
        if let problem = Identifier.problem(key) {
            throw StoreError(.invalidRecord, "idempotency key \(problem)")
        }
    }

    /// A stable encoding of records for idempotency fingerprints.
    static func canonicalPayload(_ records: [ConsentRecord]) -> [UInt8] {
        var out: [UInt8] = []
        func field(_ text: String?) {
            guard let text else { out.append(0xFF); return }
            out += Array(String(text.utf8.count).utf8)
            out.append(0x3A)
            out += Array(text.utf8)
        }
        for record in records {
            field(record.subject); field(record.purpose); field(record.dataCategory)
            field(String(record.choice.rawValue)); field(String(record.recordedAt.microseconds))
            field(record.expiresAt.map { String($0.microseconds) }); field(String(record.legalBasis.rawValue))
            field(record.source); field(record.noticeVersion.map { String($0) }); field(record.jurisdiction); field(record.evidence)
        }
        return out
    }

    /// What every store checks before an append: each record (with the store's clock skew) and
    /// the idempotency key. Returns the key's payload fingerprint ("" without a key), or nil when
    /// there is nothing to write — no records (a signal string that implies none): nothing is
    /// written and no key is claimed, since a key is erased with the records it stored and a key
    /// with none would outlive an erasure of the subject its text may name (review 25).
    static func prepareAppend(_ records: [ConsentRecord], idempotencyKey: String?, payload: [UInt8]?, now: Timestamp, maximumClockSkew: TimeSpan) throws -> String? {
        for record in records { try validate(record, now: now, maximumClockSkew: maximumClockSkew) }
        if let idempotencyKey { try validate(idempotencyKey: idempotencyKey) }
        if records.isEmpty { return nil }
        return idempotencyKey == nil ? "" : fingerprint(payload ?? canonicalPayload(records))
    }

    /// The refusal of an idempotency key reused for a different request.
    static func idempotencyConflict(_ key: String) -> StoreError {
        StoreError(.idempotencyConflict, "idempotency key '\(key)' was used before for a different request; use a new key for a new request")
    }

    /// Refuses a store whose sequence counter is below a stored record or erasure: someone set
    /// the counter back by hand, or restored part of a backup. Following it would drop the rows
    /// above the counter from the index (a withdrawal among them would let an older grant allow
    /// again) and hand their sequences out a second time; every look fails instead, so decisions
    /// that need consent fail closed, and writes are refused (their sequences collide).
    static func checkCounter(_ counter: Int64, highestRow: Int64?, location: String) throws {
        guard let highestRow, highestRow > counter else { return }
        throw StoreError(.database, """
            the consent store \(location) is damaged: its sequence counter (\(counter)) is below a stored record or erasure \
            (#\(highestRow)) — the counter was set back by hand or part of a backup was restored; decisions that need consent \
            fail closed and writes are refused until the counter is at least \(highestRow) again
            """)
    }

    static func fingerprint(_ payload: [UInt8]) -> String {
        SHA256.hash(data: payload).map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
    }

}

/// HMAC-SHA256 of subject ids under a store's erasure key: what erasure tombstones and hashed
/// receipts carry. Both stores keep the key (base64 of 32 random bytes) in `store_meta`.
public struct SubjectHasher: Sendable {
    /// Keyed once; each hash copies it.
    private let mac: HMAC<SHA256>

    /// A hasher under `erasureKey` as `store_meta` holds it.
    public init(erasureKey key: String) {
        mac = HMAC<SHA256>(key: SymmetricKey(data: Data(base64Encoded: key) ?? Data(key.utf8)))
    }

    /// A new random erasure key, base64.
    public static func freshErasureKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }

    /// HMAC-SHA256 of the subject id under this store's erasure key, as lowercase hex.
    public func hash(_ subject: String) -> String {
        var subject = subject
        return subject.withUTF8 { hash(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// HMAC-SHA256 of the subject id's bytes under this store's erasure key, as lowercase hex
    /// (receipts hash every decision's subject with it, so it allocates only the answer).
    public func hash(bytes: UnsafeRawBufferPointer) -> String {
        var mac = self.mac
        mac.update(data: bytes)
        let code = mac.finalize()
        return String(unsafeUninitializedCapacity: 2 * SHA256.byteCount) { out in
            let digits: StaticString = "0123456789abcdef"
            var index = 0
            code.withUnsafeBytes { bytes in
                for byte in bytes {
                    out[index] = digits.utf8Start[Int(byte >> 4)]
                    out[index + 1] = digits.utf8Start[Int(byte & 0x0f)]
                    index += 2
                }
            }
            return index
        }
    }

}

/// A durable consent store, whatever engine holds it: SQLite (`SQLiteConsentStore`, one file) or
/// PostgreSQL (`PostgresConsentStore`, shared by a fleet). The feed, the index, the daemon and
/// `consentctl consent …` see only this.
///
/// Every write takes the next sequences of one store-wide counter, in commit order, so a
/// follower that reads the changes above its cursor never skips one. Every method blocks the
/// calling thread (never call them on an event loop).
public protocol ConsentStorage: AnyObject, Sendable {
    /// Where the store is, for logs and status (a path, or a URL without its password).
    var location: String { get }
    /// How far in the future a record's `recorded_at` may lie.
    var maximumClockSkew: TimeSpan { get }

    /// Appends records in one durable transaction (see `SQLiteConsentStore.append`).
    func append(_ records: [ConsentRecord], idempotencyKey: String?, payload: [UInt8]?, now: Timestamp) throws -> AppendResult
    /// Deletes every record of `subject`, leaving a tombstone.
    func erase(subject: String, now: Timestamp) throws -> ErasureTombstone
    /// Runs `body` inside one write transaction; `append` (valid inside `body` only) validates
    /// and appends records and returns their sequences. Everything commits together when `body`
    /// returns, or nothing does.
    func importTransaction<T>(now: Timestamp, _ body: (_ append: ([ConsentRecord]) throws -> [UInt64]) throws -> T) throws -> T

    /// The tombstones of `subject`'s erasures.
    func erasures(of subject: String) throws -> [ErasureTombstone]
    /// The tombstones whose keyed subject hash is `hash`.
    func erasures(hashed hash: String) throws -> [ErasureTombstone]
    /// Every record of `subject`, in sequence order.
    func history(of subject: String) throws -> [ConsentRecord]
    /// The subject's records as the store knew them at `instant`.
    func history(of subject: String, asOf instant: Timestamp) throws -> [ConsentRecord]
    /// Streams every record in sequence order.
    func forEachRecord(_ body: (ConsentRecord) throws -> Void) throws
    /// The highest sequence handed out so far.
    func lastSequence() throws -> UInt64
    /// Number of records stored.
    func recordCount() throws -> Int

    /// HMAC-SHA256 of the subject id under the store's erasure key, hex.
    func subjectHash(_ subject: String) -> String
    /// The same of the id's bytes.
    func subjectHash(bytes: UnsafeRawBufferPointer) -> String

    /// The receipts hash chain's head as last anchored here.
    func receiptAnchor() throws -> String?
    /// Anchors the receipts hash chain's head.
    func setReceiptAnchor(_ hash: String) throws
    /// The lines of one receipts log (`ReceiptLog`), oldest first.
    func receiptLog(_ log: ReceiptLog) throws -> [String]
    /// Appends a line (newlines become spaces) to one receipts log.
    func appendReceiptLog(_ log: ReceiptLog, _ text: String) throws

    /// A key mapper for this store and `vocabulary`, shared by a loader and its follower.
    func keyMapper(for vocabulary: Vocabulary) -> KeyMapperHandle
    /// Every record in a fresh index snapshot, with the sequence it covers.
    func loadSnapshot(into mapper: KeyMapperHandle) throws -> ConsentSnapshot
    /// Changes committed after `sequence`, in store order, and the sequence they bring a follower to.
    func changes(after sequence: UInt64, limit: Int, mapper: KeyMapperHandle) throws -> (changes: [ConsentChange], through: UInt64)
    /// Why writes are refused now (the store's files moved, say), or nil.
    func healthProblem() -> String?
    /// Starts calling `wake` whenever another process may have committed (PostgreSQL: LISTEN);
    /// nil when the store offers no such signal (SQLite: the follower polls).
    func watchChanges(_ wake: @escaping @Sendable () -> Void) -> (any ChangeWatch)?
}

/// What the store keeps about a daemon's receipts besides the chain's anchor: each a list of
/// lines in `store_meta`, written by the receipt writer and read by every replay.
public enum ReceiptLog: String, Sendable {
    /// Breaks of the receipts chain a daemon found at start-up.
    case chainBreaks = "receipt_breaks"
    /// Receipts files retired under the retention policy (`ReceiptRetirement`, one JSON object
    /// each): a replay reports them as retired, not as removed.
    case retirements = "receipt_retired"
}

extension ConsentStorage {
    /// Breaks of the receipts chain found at start-up.
    public func receiptChainBreaks() throws -> [String] { try receiptLog(.chainBreaks) }
    /// Records a break of the receipts chain.
    public func recordReceiptChainBreak(_ text: String) throws { try appendReceiptLog(.chainBreaks, text) }

    /// Validates a record as a write would (`StoreRules`, with this store's clock skew).
    public func validate(_ record: ConsentRecord, now: Timestamp) throws {
        try StoreRules.validate(record, now: now, maximumClockSkew: maximumClockSkew)
    }

    public func watchChanges(_ wake: @escaping @Sendable () -> Void) -> (any ChangeWatch)? { nil }
}


/// Opens the store a `--store` value names: a `postgres://` or `postgresql://` URI is a
/// PostgreSQL store, anything else an SQLite file path.
public enum ConsentStores {
    public static func open(
        _ location: String, fileMode: UInt16 = SQLiteConsentStore.defaultFileMode, maximumClockSkew: TimeSpan = StoreRules.defaultClockSkew,
        synchronousCommits: Bool = true
    ) throws -> any ConsentStorage {
        if PostgresAddress.isPostgres(location) {
            return try PostgresConsentStore(address: PostgresAddress(location), maximumClockSkew: maximumClockSkew)
        }
        return try SQLiteConsentStore(path: location, fileMode: fileMode, maximumClockSkew: maximumClockSkew, synchronousCommits: synchronousCommits)
    }
}
