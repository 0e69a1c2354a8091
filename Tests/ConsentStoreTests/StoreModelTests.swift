import ConsentModel
@testable import ConsentStore
import ConsentWorkload
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

// A seeded, stateful, model-based test of the durable store (`SQLiteConsentStore`) and the
// in-memory index kept by `ConsentFeed`.
//
// The reference model below deliberately shares none of the implementation's notions of
// identity: every string is kept as its UTF-8 bytes (`[UInt8]`), validity is decided by a
// re-implementation of the identifier rule written against Unicode scalar properties (not by
// calling `Identifier`), idempotency payloads are compared structurally, and the time range is
// written down from the calendar, not read from `Timestamp`. The generators draw from a hostile
// alphabet (NUL, C1 controls, DEL, NFC/NFD spellings, compatibility twins, 256/257-byte ids).
//
// Reproduce a failing run with the seed and step it prints:
//   CONSENTD_MODEL_SEED=0x… CONSENTD_MODEL_STEPS=<step> swift test --filter StoreModelTests

// MARK: - Run configuration

private enum ModelRunConfiguration {
    /// The default runs: 4 seeds × 750 steps = 3000 steps.
    static let defaultSeeds: [UInt64] = [0xC0FF_EE00_5EED_0001, 0x5EED_0000_0000_0002, 0x0BAD_CAFE_0000_0003, 0x0000_0000_0000_0004]
    static let defaultSteps = 750

    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// The seeds to run: `CONSENTD_MODEL_SEED` (decimal or 0x-hex) alone when set, else the defaults.
    static var seeds: [UInt64] {
        guard let text = environment["CONSENTD_MODEL_SEED"] else { return defaultSeeds }
        // An unparsable seed runs seed 0 and the test reports the bad variable.
        return [parse(text) ?? 0]
    }

    static var steps: Int {
        guard let text = environment["CONSENTD_MODEL_STEPS"], let steps = Int(text.trimmingCharacters(in: .whitespaces)), steps > 0 else {
            return defaultSteps
        }
        return steps
    }

    /// Every how many steps a fresh index is loaded from the store and compared (and at the end).
    static let loadEvery = 4
    /// Every how many steps every stored record, idempotency key and tombstone is compared (and at the end).
    static let fullCheckEvery = 6

    static func parse(_ text: String) -> UInt64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed.hasPrefix("0x") { return UInt64(trimmed.dropFirst(2).replacingOccurrences(of: "_", with: ""), radix: 16) }
        return UInt64(trimmed)
    }
}

// MARK: - The reference model

private typealias Bytes = [UInt8]

/// The model's own statement of the validation rules.
private enum ModelRules {
    /// 0001-01-01T00:00:00Z: 719 162 days before 1970-01-01.
    static let earliest: Int64 = -719_162 * 86_400 * 1_000_000
    /// 9999-12-31T23:59:59.999999Z: 2 932 897 days from 1970-01-01 to 10000-01-01, less 1 µs.
    static let latest: Int64 = 2_932_897 * 86_400 * 1_000_000 - 1

    /// Why `text` is not an identifier (subject ids, idempotency keys, purposes, data
    /// categories, sources): 1–`maximumBytes` bytes of valid UTF-8 without a Unicode control
    /// character (general category Cc). Nil when it is one.
    static func identifierProblem(_ text: String, maximumBytes: Int = 256) -> String? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumBytes else { return "\(bytes.count) bytes" }
        guard let decoded = String(validating: bytes, as: UTF8.self) else { return "not UTF-8" }
        if let control = decoded.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            return "control U+\(String(control.value, radix: 16, uppercase: true))"
        }
        return nil
    }

    static func inRange(_ microseconds: Int64) -> Bool { microseconds >= earliest && microseconds <= latest }

    /// Why the record would be refused by a store whose clock reads `now`, or nil.
    static func recordProblem(_ record: ConsentRecord, now: Int64, skew: Int64) -> String? {
        if let problem = identifierProblem(record.subject) { return "subject: \(problem)" }
        if let problem = identifierProblem(record.purpose) { return "purpose: \(problem)" }
        if let data = record.dataCategory, let problem = identifierProblem(data) { return "data: \(problem)" }
        if let problem = identifierProblem(record.source, maximumBytes: 64) { return "source: \(problem)" }
        let recorded = record.recordedAt.microseconds
        guard inRange(recorded) else { return "recorded_at out of range" }
        if let expires = record.expiresAt?.microseconds {
            guard inRange(expires) else { return "expires_at out of range" }
            guard expires > recorded else { return "expires_at not after recorded_at" }
        }
        // recorded_at <= now + skew, without overflow.
        let (limit, overflow) = now.addingReportingOverflow(skew)
        if !overflow, recorded > limit { return "recorded_at after now + skew" }
        if let jurisdiction = record.jurisdiction {
            let scalars = jurisdiction.unicodeScalars
            guard (1...16).contains(jurisdiction.utf8.count), scalars.allSatisfy({ $0.value >= 0x21 && $0.value <= 0x7E }) else {
                return "jurisdiction"
            }
        }
        if let evidence = record.evidence {
            guard evidence.utf8.count <= 4096, !evidence.unicodeScalars.contains(where: { $0.value == 0 }) else { return "evidence" }
        }
        // 4294967295 is the index's "no notice" marker: refused, so a record cannot read back differently.
        if record.noticeVersion == UInt32.max { return "notice version" }
        return nil
    }
}

/// A record as the model keeps it: every text as bytes.
private struct ModelRecord: Equatable {
    var sequence: UInt64
    var subject: Bytes
    var purpose: Bytes
    var data: Bytes?
    var choice: UInt8
    var recordedAt: Int64
    var expiresAt: Int64?
    var legalBasis: UInt8
    var source: Bytes
    var notice: UInt32?
    var jurisdiction: Bytes?
    var evidence: Bytes?

    /// The fields of `record` (an input or a stored record read back), with `sequence`.
    init(_ record: ConsentRecord, sequence: UInt64) {
        self.sequence = sequence
        subject = Array(record.subject.utf8)
        purpose = Array(record.purpose.utf8)
        data = record.dataCategory.map { Array($0.utf8) }
        choice = record.choice.rawValue
        recordedAt = record.recordedAt.microseconds
        expiresAt = record.expiresAt?.microseconds
        legalBasis = record.legalBasis.rawValue
        source = Array(record.source.utf8)
        notice = record.noticeVersion
        jurisdiction = record.jurisdiction.map { Array($0.utf8) }
        evidence = record.evidence.map { Array($0.utf8) }
    }

    var rendered: String {
        "#\(sequence) \(show(subject)) \(show(purpose)) data=\(data.map(show) ?? "nil") c\(choice) rec=\(recordedAt) exp=\(expiresAt.map(String.init) ?? "nil") lb\(legalBasis) src=\(show(source)) notice=\(notice.map(String.init) ?? "nil") jur=\(jurisdiction.map(show) ?? "nil") ev=\(evidence.map(show) ?? "nil")"
    }
}

/// What the index can show of a record (interned names resolved back to bytes).
private struct IndexRow: Equatable {
    var sequence: UInt64
    var purpose: Bytes?
    var allData: Bool
    var data: Bytes?
    var choice: UInt8
    var legalBasis: UInt8
    var recordedAt: Int64
    var expiresAt: Int64?
    var source: Bytes?
    var notice: UInt32?

    init(_ record: ModelRecord) {
        sequence = record.sequence
        purpose = record.purpose
        allData = record.data == nil
        data = record.data
        choice = record.choice
        legalBasis = record.legalBasis
        recordedAt = record.recordedAt
        expiresAt = record.expiresAt
        source = record.source
        // The compact form documents `noNotice` (UInt32.max) as "unknown": a stored notice
        // version of UInt32.max reads back as absent there.
        notice = record.notice == UInt32.max ? nil : record.notice
    }

    init(_ record: CompactRecord, vocabulary: Vocabulary) {
        sequence = record.sequence
        purpose = vocabulary.purposes.name(record.purpose).map { Array($0.utf8) }
        allData = record.dataCategory == CompactRecord.allData
        data = allData ? nil : vocabulary.dataCategories.name(record.dataCategory).map { Array($0.utf8) }
        choice = record.choice.rawValue
        legalBasis = record.legalBasis.rawValue
        recordedAt = record.recordedAt.microseconds
        expiresAt = record.expiresAt == Timestamp.distantFuture ? nil : record.expiresAt.microseconds
        source = vocabulary.sources.name(record.source).map { Array($0.utf8) }
        notice = record.noticeVersion == CompactRecord.noNotice ? nil : record.noticeVersion
    }

    var rendered: String {
        "#\(sequence) \(purpose.map(show) ?? "<unknown purpose id>") data=\(allData ? "all" : data.map(show) ?? "<unknown data id>") c\(choice) rec=\(recordedAt) exp=\(expiresAt.map(String.init) ?? "nil") lb\(legalBasis) src=\(source.map(show) ?? "<unknown source id>") notice=\(notice.map(String.init) ?? "nil")"
    }
}

/// The reference model of the store's durable state.
private struct ReferenceModel {
    /// What identifies a request for idempotency: the explicit payload bytes, or (without one)
    /// every field of the records.
    enum Payload: Equatable {
        case explicit(Bytes)
        case records([ModelRecord])
    }

    struct KeyEntry {
        var payload: Payload
        var sequences: [UInt64]
    }

    struct Tombstone: Equatable {
        var sequence: UInt64
        var erasedAt: Int64
        var count: Int
    }

    enum WriteOutcome: Equatable {
        case stored([UInt64])
        case replayed([UInt64])
        case invalid(String)
        case conflict
    }

    enum EraseOutcome: Equatable {
        case erased(sequence: UInt64, count: Int)
        case invalid(String)
    }

    var records: [Bytes: [ModelRecord]] = [:]
    var lastSequence: UInt64 = 0
    var keys: [Bytes: KeyEntry] = [:]
    var tombstones: [Bytes: [Tombstone]] = [:]

    var recordCount: Int { records.values.reduce(0) { $0 + $1.count } }

    static func payload(_ records: [ConsentRecord], explicit: [UInt8]?) -> Payload {
        if let explicit { return .explicit(explicit) }
        return .records(records.map { ModelRecord($0, sequence: 0) })
    }

    func predictWrite(_ records: [ConsentRecord], key: String?, payload: [UInt8]?, now: Int64, skew: Int64) -> WriteOutcome {
        for record in records {
            if let problem = ModelRules.recordProblem(record, now: now, skew: skew) { return .invalid(problem) }
        }
        if let key {
            if let problem = ModelRules.identifierProblem(key) { return .invalid("key: \(problem)") }
            if let entry = keys[Array(key.utf8)] {
                guard entry.payload == Self.payload(records, explicit: payload) else { return .conflict }
                return .replayed(entry.sequences)
            }
        }
        return .stored(records.indices.map { lastSequence + UInt64($0) + 1 })
    }

    mutating func commitWrite(_ records: [ConsentRecord], key: String?, payload: [UInt8]?, sequences: [UInt64]) {
        for (record, sequence) in zip(records, sequences) {
            let stored = ModelRecord(record, sequence: sequence)
            self.records[stored.subject, default: []].append(stored)
        }
        lastSequence = sequences.last ?? lastSequence
        if let key, !sequences.isEmpty {
            keys[Array(key.utf8)] = KeyEntry(payload: Self.payload(records, explicit: payload), sequences: sequences)
        }
    }

    func predictErase(_ subject: String) -> EraseOutcome {
        if let problem = ModelRules.identifierProblem(subject) { return .invalid(problem) }
        return .erased(sequence: lastSequence + 1, count: records[Array(subject.utf8)]?.count ?? 0)
    }

    /// Removes the subject's records, every idempotency key whose write stored one of them, and
    /// leaves a tombstone.
    mutating func commitErase(_ subject: String, now: Int64) {
        let bytes = Array(subject.utf8)
        let erased = Set((records[bytes] ?? []).map(\.sequence))
        keys = keys.filter { $0.value.sequences.allSatisfy { !erased.contains($0) } }
        records[bytes] = nil
        lastSequence += 1
        tombstones[bytes, default: []].append(Tombstone(sequence: lastSequence, erasedAt: now, count: erased.count))
    }
}

// MARK: - Rendering (for failure messages)

/// A string as Swift source, every non-printable-ASCII scalar escaped and long runs shortened,
/// so that NFC and NFD, "victim" and "victim\u{0}x" print differently.
private func show(_ text: String) -> String {
    var out = "\""
    var scalars = Array(text.unicodeScalars)[...]
    while let scalar = scalars.first {
        var run = 1
        while run < scalars.count, scalars[scalars.startIndex + run] == scalar { run += 1 }
        let piece: String
        switch scalar.value {
        case 0x20...0x7E where scalar != "\"" && scalar != "\\": piece = String(scalar)
        default: piece = "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
        }
        if run > 6 {
            out += "\\(\(piece)×\(run))"
            scalars = scalars.dropFirst(run)
        } else {
            out += piece
            scalars = scalars.dropFirst()
        }
    }
    return out + "\""
}

private func show(_ bytes: Bytes) -> String { show(String(decoding: bytes, as: UTF8.self)) }

private func showBytes(_ bytes: [UInt8]) -> String { "[" + bytes.map { String($0, radix: 16) }.joined(separator: " ") + "]" }

private func render(_ record: ConsentRecord) -> String {
    "{\(show(record.subject)) \(show(record.purpose)) data=\(record.dataCategory.map(show) ?? "nil") \(record.choice) rec=\(record.recordedAt.microseconds) exp=\(record.expiresAt.map { String($0.microseconds) } ?? "nil") lb\(record.legalBasis.rawValue) src=\(show(record.source)) notice=\(record.noticeVersion.map(String.init) ?? "nil") jur=\(record.jurisdiction.map(show) ?? "nil") ev=\(record.evidence.map(show) ?? "nil")}"
}

// MARK: - The hostile alphabet

private enum Hostile {
    /// Pieces of subject ids (valid and invalid); the pool adds concatenations of them.
    static let subjectPieces: [String] = [
        "alice", "bob", "victim", "victim\u{0}x", "\u{0}", "victim ", "victi", "jos\u{E9}", "jose\u{301}",
        "\u{212B}", "\u{C5}", "A\u{30A}", "\u{17F}", "s", "S", "\u{85}", "\u{7F}", "x\u{7F}", "\u{9F}", "\u{A0}",
        "\u{1}", "\u{1F}", "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}", "\u{1F642}", "\u{FEFF}", "\u{200B}",
        "\u{10FFFF}", "\u{FFFD}", "\u{E000}", "a-b.c:d/e", "\u{E9}", "e\u{301}", "\u{FB01}", "fi", "Ǆ", "ǅ", "ǆ",
        " ", "0", "\"'\\",
    ]

    static let longSubjects: [String] = [
        String(repeating: "a", count: 256),
        String(repeating: "a", count: 257),
        String(repeating: "a", count: 254) + "\u{E9}",  // 256 bytes
        String(repeating: "a", count: 255) + "\u{E9}",  // 257 bytes
        String(repeating: "\u{E9}", count: 128),  // 256 bytes, NFC
        String(repeating: "e\u{301}", count: 85),  // 255 bytes, NFD
        String(repeating: "e\u{301}", count: 86),  // 258 bytes
        String(repeating: "\u{1F642}", count: 64),  // 256 bytes
        String(repeating: "\u{1F642}", count: 64) + "a",  // 257 bytes
        String(repeating: "a", count: 255) + "\u{0}",  // 256 bytes with NUL
    ]

    static let purposes: [String] = [
        "marketing", "marketing.email", "analytics", "p.one", "p.two", "caf\u{E9}.menu", "cafe\u{301}.menu",
        "\u{212B}.unit", "\u{C5}.unit", "A\u{30A}.unit", "\u{17F}.long", "s.long", "S.long", "\u{1F642}.emoji",
        "ads.targeted.x", String(repeating: "p", count: 256), "victim", "\u{A0}.nbsp", "\u{FEFF}bom",
    ]
    static let invalidPurposes: [String] = [
        "", "mark\u{0}eting", "\u{85}ads", "ads\u{7F}", String(repeating: "p", count: 257), "ads\u{1F}", "\u{9F}",
    ]
    static let dataCategories: [String] = [
        "user.contact.email", "user.location", "us\u{E9}r.x", "use\u{301}r.x", "\u{1F642}", "victim", "D",
    ]
    static let invalidDataCategories: [String] = ["", "d\u{0}", "d\u{80}", String(repeating: "d", count: 257)]
    static let sources: [String] = [
        "web", "app", "import", "gpc", "caf\u{E9}", "cafe\u{301}", "\u{212B}", "\u{C5}",
        String(repeating: "w", count: 64), String(repeating: "\u{E9}", count: 32), String(repeating: "\u{1F642}", count: 16),
    ]
    static let invalidSources: [String] = [
        "", "w\u{0}eb", String(repeating: "w", count: 65), String(repeating: "\u{E9}", count: 33),
        String(repeating: "\u{1F642}", count: 16) + "a", "\u{85}", "w\u{7F}",
    ]
    static let jurisdictions: [String] = ["DE", "US-CA", "~", "!", String(repeating: "X", count: 16)]
    static let invalidJurisdictions: [String] = ["", "D E", "D\u{C9}", String(repeating: "X", count: 17), "\u{7F}", "D\u{0}", " "]
    static let evidence: [String] = [
        "form-17", "", "\u{1}\u{85}\u{7F}\u{9F}", "tc=\u{E9}", "tc=e\u{301}", String(repeating: "e", count: 4096),
        String(repeating: "\u{E9}", count: 2048),
    ]
    static let invalidEvidence: [String] = [
        "a\u{0}b", "\u{0}", String(repeating: "e", count: 4097), String(repeating: "\u{E9}", count: 2048) + "x",
    ]
    static let idempotencyKeys: [String] = [
        "req-1", "k", "victim", "victim\u{0}x", "\u{0}", "jos\u{E9}", "jose\u{301}", "\u{212B}", "\u{C5}", "A\u{30A}",
        "\u{17F}", "s", "S", "\u{85}", "\u{7F}", "", String(repeating: "k", count: 256), String(repeating: "k", count: 257),
        "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}", "\u{1F642}", "req-1 ", "\u{FB01}", "fi",
    ]
    /// Times where the range and clock-skew rules turn.
    static let boundaryTimes: [Int64] = [
        ModelRules.earliest, ModelRules.earliest + 1, ModelRules.earliest - 1, 0, -1, 1, -3_155_760_000_000_000,
        ModelRules.latest, ModelRules.latest + 1, ModelRules.latest - 1, .min, .max, 1_000_000,
    ]
}

/// Spellings of `text` that a careless implementation might merge with it: canonical and
/// compatibility normal forms, case variants, a NUL-extended and a NUL-truncated form.
private func twins(of text: String) -> [String] {
    var out = [text, text.precomposedStringWithCanonicalMapping, text.decomposedStringWithCanonicalMapping,
               text.precomposedStringWithCompatibilityMapping, text.lowercased(), text.uppercased(), text + "\u{0}x", text + " "]
    if let nul = text.unicodeScalars.firstIndex(of: "\u{0}") { out.append(String(text.unicodeScalars[..<nul])) }
    var seen = Set<Bytes>()
    return out.filter { seen.insert(Array($0.utf8)).inserted }
}

// MARK: - Operations

private enum Writer: String {
    /// `ConsentFeed.record`/`erase` on the main store: the index catches up at once.
    case feed
    /// The main store directly: the index lags until the next catch-up.
    case store
    /// A second `SQLiteConsentStore` on the same file, as another process would have.
    case other
}

private struct WriteOp {
    var via: Writer
    var records: [ConsentRecord]
    var key: String?
    var payload: [UInt8]?
    var now: Int64
    var inject = false
    var cap = false
    var label: String
}

private struct EraseOp {
    var via: Writer
    var subject: String
    var now: Int64
    var inject = false
    var cap = false
}

private enum Op {
    case write(WriteOp)
    case erase(EraseOp)
    case catchUp
    case restart(reopenOther: Bool)
    case checkpoint

    var rendered: String {
        switch self {
        case let .write(op):
            return "write[\(op.label) via \(op.via.rawValue)\(op.inject ? " failNextWrites(1)" : "")\(op.cap ? " max_page_count=page_count" : "")] now=\(op.now) key=\(op.key.map(show) ?? "nil") payload=\(op.payload.map(showBytes) ?? "nil") records=[\(op.records.map(render).joined(separator: ", "))]"
        case let .erase(op):
            return "erase[via \(op.via.rawValue)\(op.inject ? " failNextWrites(1)" : "")\(op.cap ? " max_page_count=page_count" : "")] now=\(op.now) subject=\(show(op.subject))"
        case .catchUp: return "feed.catchUp()"
        case let .restart(reopenOther): return "restart(main store + feed\(reopenOther ? " + second writer" : ""))"
        case .checkpoint: return "checkpointAndTruncateWAL()"
        }
    }
}

// MARK: - The harness

private final class ModelHarness {
    let seed: UInt64
    let steps: Int
    var rng: SplitMix64
    let temporary = TemporaryStore()
    let mainSkew: Int64
    let otherSkew: Int64

    var store: SQLiteConsentStore!
    var feed: ConsentFeed!
    var vocabulary = Vocabulary()
    var other: SQLiteConsentStore!

    var model = ReferenceModel()
    /// What the feed's index must show: the model as of its last catch-up.
    var indexView: [Bytes: [ModelRecord]] = [:]
    var indexViewSequence: UInt64 = 0

    var step = 0
    var currentOp = ""
    var log: [String] = []
    var failures = 0

    // Generator state.
    var clock: Int64 = 1_767_225_600_000_000  // 2026-01-01T00:00:00Z
    var validSubjects: [String] = []
    var invalidSubjects: [String] = []
    var freshCounter = 0
    var recentFreshNames: [String] = []
    var keyedAttempts: [(key: String, records: [ConsentRecord], payload: [UInt8]?)] = []
    var scripted: [Op] = []
    /// Whether the write being generated draws invalid values often (about one write in four)
    /// or rarely, so that the store also grows a realistic state.
    var hostile = true

    // Statistics, printed once per run.
    var stats: [String: Int] = [:]
    var subjectHashes: [Bytes: String] = [:]

    init(seed: UInt64, steps: Int) throws {
        self.seed = seed
        self.steps = steps
        var generator = SplitMix64(seed: seed)
        // Most runs use the default skew; some a zero or a one-second one (per seed).
        let skews: [Int64] = [300_000_000, 300_000_000, 0, 1_000_000]
        mainSkew = skews[Int(generator.next() % UInt64(skews.count))]
        rng = generator
        otherSkew = 300_000_000
        try openMain()
        other = try SQLiteConsentStore(path: temporary.path, maximumClockSkew: TimeSpan(microseconds: otherSkew))
        buildSubjectPool()
    }

    func openMain() throws {
        store = try SQLiteConsentStore(path: temporary.path, maximumClockSkew: TimeSpan(microseconds: mainSkew))
        vocabulary = Vocabulary()
        feed = try ConsentFeed(store: store, vocabulary: vocabulary)
        indexView = model.records
        indexViewSequence = model.lastSequence
    }

    // MARK: random helpers (our own, so that draws do not depend on stdlib algorithms)

    func below(_ bound: Int) -> Int { Int(rng.next() % UInt64(bound)) }
    func chance(_ percent: Int) -> Bool { below(100) < percent }
    func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    func buildSubjectPool() {
        var pool = Hostile.subjectPieces + Hostile.longSubjects
        for _ in 0..<40 {
            var id = ""
            for _ in 0..<(2 + below(2)) { id += pick(Hostile.subjectPieces) }
            pool.append(id)
        }
        var seen = Set<Bytes>()
        for id in pool where seen.insert(Array(id.utf8)).inserted {
            if ModelRules.identifierProblem(id) == nil { validSubjects.append(id) } else { invalidSubjects.append(id) }
        }
    }

    /// True with `percent` % for a hostile write, a quarter of that otherwise.
    func invalid(_ percent: Int) -> Bool { below(400) < (hostile ? 4 : 1) * percent }

    func subject() -> String {
        if invalid(8) { return pick(invalidSubjects) }
        switch below(100) {
        case 0..<12: return "victim"
        case 12..<20: return pick(["jos\u{E9}", "jose\u{301}", "\u{212B}", "\u{C5}", "A\u{30A}", "\u{17F}", "s", "S"])
        case 20..<90: return pick(validSubjects)
        default:
            var id = ""
            for _ in 0..<(1 + below(3)) { id += pick(Hostile.subjectPieces) }
            return id
        }
    }

    /// A name never used before, or (one time in four) the other canonical spelling of a recent
    /// one, which may have been used already, possibly as another kind of name.
    func freshName(_ prefix: String) -> String {
        if !recentFreshNames.isEmpty, chance(25) {
            let base = pick(recentFreshNames)
            let twin = chance(50) ? base.decomposedStringWithCanonicalMapping : base.precomposedStringWithCanonicalMapping
            if Array(twin.utf8) != Array(base.utf8) { return twin }
        }
        freshCounter += 1
        let name: String
        switch below(5) {
        case 0: name = "\(prefix).n\(freshCounter)"
        case 1: name = "\(prefix).caf\u{E9}\(freshCounter)"
        case 2: name = "\(prefix).cafe\u{301}\(freshCounter)"
        case 3: name = "\(prefix).\u{212B}\(freshCounter)"
        default: name = "\(prefix).\u{1F642}\(freshCounter)"
        }
        recentFreshNames.append(name)
        if recentFreshNames.count > 16 { recentFreshNames.removeFirst() }
        return name
    }

    func now() -> Int64 {
        clock += 1 + Int64(below(5_000_000))
        guard chance(6) else { return clock }
        return pick([0, -1, 1, ModelRules.earliest, ModelRules.earliest + 1, ModelRules.latest, ModelRules.latest - mainSkew, -86_400_000_000])
    }

    func skew(of writer: Writer) -> Int64 { writer == .other ? otherSkew : mainSkew }

    func recordedAt(now: Int64, skew: Int64) -> Int64 {
        if !hostile, chance(70) { return now &- Int64(below(10_000_000_000)) }
        switch below(100) {
        case 0..<72: return now &- Int64(below(10_000_000_000))
        case 72..<77: return now &+ skew
        case 77..<80: return now &+ skew &- 1
        case 80..<84: return now &+ skew &+ 1
        case 84..<86: return now &- 1
        default: return pick(Hostile.boundaryTimes)
        }
    }

    func expiresAt(recorded: Int64, now: Int64) -> Int64? {
        if !hostile, chance(70) { return chance(60) ? nil : recorded &+ 1 &+ Int64(below(1_000_000_000_000)) }
        switch below(100) {
        case 0..<60: return nil
        case 60..<72: return recorded &+ 1
        case 72..<75: return recorded
        case 75..<77: return recorded &- 1
        case 77..<82: return ModelRules.latest
        case 82..<84: return ModelRules.latest &+ 1
        case 84..<95: return recorded &+ 1 &+ Int64(below(1_000_000_000_000))
        default: return pick([ModelRules.earliest, Int64.max, now, now &+ 1, 0])
        }
    }

    func purpose() -> String {
        if invalid(4) { return pick(Hostile.invalidPurposes) }
        return chance(88) ? pick(Hostile.purposes) : freshName("p")
    }

    func dataCategory() -> String? {
        if invalid(2) { return pick(Hostile.invalidDataCategories) }
        switch below(100) {
        case 0..<50: return nil
        case 50..<92: return pick(Hostile.dataCategories)
        default: return freshName("d")
        }
    }

    func source() -> String {
        if invalid(3) { return pick(Hostile.invalidSources) }
        return chance(88) ? pick(Hostile.sources) : freshName("src")
    }

    func record(subject: String, now: Int64, skew: Int64, big: Bool = false) -> ConsentRecord {
        let recorded = recordedAt(now: now, skew: skew)
        return ConsentRecord(
            subject: subject, purpose: purpose(), dataCategory: dataCategory(), choice: chance(50) ? .grant : .deny,
            recordedAt: Timestamp(microseconds: recorded), expiresAt: expiresAt(recorded: recorded, now: now).map(Timestamp.init(microseconds:)),
            legalBasis: LegalBasis(rawValue: UInt8(below(LegalBasis.allCases.count)))!, source: source(),
            noticeVersion: chance(40) ? nil : pick([0, 1, 2, UInt32.max, UInt32(truncatingIfNeeded: rng.next())]),
            jurisdiction: invalid(4) ? pick(Hostile.invalidJurisdictions) : chance(50) ? nil : pick(Hostile.jurisdictions),
            evidence: big ? String(repeating: pick(["e", "\u{E9}"]), count: 1500 + below(500))
                : invalid(4) ? pick(Hostile.invalidEvidence) : chance(50) ? nil : pick(Hostile.evidence)
        )
    }

    /// A valid record (for the interning and disk-full scenarios), built from the given names.
    func validRecord(subject: String, purpose: String, data: String?, source: String, now: Int64, evidence: String? = nil) -> ConsentRecord {
        ConsentRecord(subject: subject, purpose: purpose, dataCategory: data, choice: chance(50) ? .grant : .deny,
                      recordedAt: Timestamp(microseconds: now - Int64(below(1_000_000))), source: source,
                      noticeVersion: chance(50) ? nil : 3, evidence: evidence)
    }

    func records(now: Int64, skew: Int64, big: Bool = false) -> [ConsentRecord] {
        hostile = chance(25)
        defer { hostile = true }
        let count = 1 + below(3)
        let first = subject()
        return (0..<count).map { _ in record(subject: chance(60) ? first : subject(), now: now, skew: skew, big: big) }
    }

    func key() -> String? {
        switch below(100) {
        case 0..<45: return nil
        case 45..<75:
            freshCounter += 1
            return pick(["key-", "jos\u{E9}-", "jose\u{301}-", "\u{212B}-", "victim-"]) + String(freshCounter)
        default: return pick(Hostile.idempotencyKeys)
        }
    }

    func payload(for key: String?) -> [UInt8]? {
        guard key != nil, chance(50) else { return nil }
        // 0xFE never starts a canonical record encoding; a small alphabet so payloads repeat.
        return [0xFE] + (0..<(1 + below(2))).map { _ in UInt8(below(3)) }
    }

    // MARK: choosing the next operation

    func nextOp() -> Op {
        if !scripted.isEmpty { return scripted.removeFirst() }
        let roll = below(1000)
        switch roll {
        case 0..<330: return .write(freshWrite(via: .feed))
        case 330..<390: return .write(freshWrite(via: .store))
        case 390..<470: if let op = retry() { return .write(op) } else { return .write(freshWrite(via: .feed)) }
        case 470..<520: if let op = conflict() { return .write(op) } else { return .write(freshWrite(via: .feed)) }
        case 520..<600: return .erase(erase(via: chance(80) ? .feed : .store))
        case 600..<640: scriptInterning(); return scripted.removeFirst()
        case 640..<680: return injected()
        case 680..<710: return diskFull()
        case 710..<730: return .restart(reopenOther: chance(30))
        case 730..<830: scriptSecondWriter(); return scripted.removeFirst()
        case 830..<860: return .catchUp
        case 860..<870: return .checkpoint
        default: return .write(twinWrite())
        }
    }

    func freshWrite(via: Writer) -> WriteOp {
        let now = self.now()
        let key = self.key()
        return WriteOp(via: via, records: records(now: now, skew: skew(of: via)), key: key, payload: payload(for: key), now: now, label: "fresh")
    }

    /// Records for two spellings that must stay apart, in one write.
    func twinWrite() -> WriteOp {
        let now = clockNow()
        let pair = pick([("jos\u{E9}", "jose\u{301}"), ("\u{212B}", "\u{C5}"), ("\u{C5}", "A\u{30A}"), ("\u{17F}", "s"), ("s", "S"),
                         ("victim", "victim "), ("\u{FB01}", "fi"), ("Ǆ", "ǅ")])
        let purpose = pick(Hostile.purposes)
        let records = [validRecord(subject: pair.0, purpose: purpose, data: nil, source: "web", now: now),
                       validRecord(subject: pair.1, purpose: purpose.decomposedStringWithCanonicalMapping, data: nil, source: "web", now: now)]
        let key = self.key()
        return WriteOp(via: chance(80) ? .feed : .other, records: records, key: key, payload: payload(for: key), now: now, label: "twins")
    }

    func clockNow() -> Int64 {
        clock += 1 + Int64(below(5_000_000))
        return clock
    }

    /// An exact retry of an earlier keyed attempt (a replay, or a fresh write if the key was
    /// never stored or was dropped by an erasure).
    func retry() -> WriteOp? {
        guard !keyedAttempts.isEmpty else { return nil }
        let attempt = pick(keyedAttempts)
        let via: Writer = pick([.feed, .feed, .store, .other])
        return WriteOp(via: via, records: attempt.records, key: attempt.key, payload: attempt.payload, now: clockNow(), label: "retry")
    }

    /// An earlier key with a different request.
    func conflict() -> WriteOp? {
        guard !keyedAttempts.isEmpty else { return nil }
        let attempt = pick(keyedAttempts)
        var records = attempt.records
        var payload = attempt.payload
        if var explicit = payload, chance(70) {
            explicit.append(UInt8(below(3)))
            payload = explicit
        } else if payload != nil {
            payload = nil
        } else if chance(20) {
            payload = [0xFE, 0]
        } else {
            // A change only a byte-exact fingerprint sees.
            let index = below(records.count)
            switch below(7) {
            case 0:
                let nfd = records[index].subject.decomposedStringWithCanonicalMapping
                let nfc = records[index].subject.precomposedStringWithCanonicalMapping
                records[index].subject = Array(nfd.utf8) != Array(records[index].subject.utf8) ? nfd : nfc
            case 1: records[index].choice = records[index].choice == .grant ? .deny : .grant
            case 2: records[index].recordedAt = Timestamp(microseconds: records[index].recordedAt.microseconds &- 1)
            case 3: records[index].evidence = records[index].evidence == nil ? "" : nil
            case 4: records[index].noticeVersion = records[index].noticeVersion == nil ? 0 : nil
            case 5: records[index].purpose = records[index].purpose.decomposedStringWithCanonicalMapping + (chance(50) ? "" : ".x")
            default: records.append(records[index])
            }
        }
        return WriteOp(via: pick([.feed, .other]), records: records, key: attempt.key, payload: payload, now: clockNow(), label: "conflict?")
    }

    func erase(via: Writer) -> EraseOp {
        let subject: String
        // Sorted: dictionary order differs between processes, and a seed must replay exactly.
        let known = model.records.keys.sorted { $0.lexicographicallyPrecedes($1) }
        switch below(100) {
        case 0..<55 where !known.isEmpty: subject = String(decoding: pick(known), as: UTF8.self)
        case 55..<70 where !known.isEmpty: subject = pick(twins(of: String(decoding: pick(known), as: UTF8.self)))
        default: subject = self.subject()
        }
        return EraseOp(via: via, subject: subject, now: now())
    }

    /// The rollback scenario: a write introducing new names fails before commit, a write with
    /// other new names follows, then one reusing the first names.
    func scriptInterning() {
        let via: Writer = pick([.feed, .store, .other])
        let now = clockNow()
        let first = (purpose: freshName("p"), data: chance(50) ? freshName("d") : nil, source: freshName("src"))
        let second = (purpose: freshName("p"), data: chance(50) ? freshName("d") : nil, source: freshName("src"))
        let subjects = [subject(), subject()].map { ModelRules.identifierProblem($0) == nil ? $0 : "victim" }
        let failing = WriteOp(via: via, records: [validRecord(subject: subjects[0], purpose: first.purpose, data: first.data, source: first.source, now: now)],
                              key: chance(50) ? key() : nil, payload: nil, now: now, inject: true, label: "intern-1/3 (fails)")
        let middle = WriteOp(via: chance(50) ? via : pick([.feed, .store, .other]),
                             records: [validRecord(subject: subjects[1], purpose: second.purpose, data: second.data, source: second.source, now: now)],
                             key: nil, payload: nil, now: now, label: "intern-2/3")
        let last = WriteOp(via: chance(50) ? via : pick([.feed, .store, .other]),
                           records: [validRecord(subject: subjects[chance(50) ? 0 : 1], purpose: first.purpose, data: first.data, source: first.source, now: now)],
                           key: nil, payload: nil, now: now, label: "intern-3/3")
        scripted += [.write(failing), .write(middle), .write(last)]
        if chance(50) { scripted.append(.catchUp) }
    }

    /// An injected failure on an operation that would otherwise reach its commit.
    func injected() -> Op {
        for _ in 0..<8 {
            var candidate: Op
            switch below(3) {
            case 0:
                guard var op = retry() else { continue }
                op.inject = true
                candidate = .write(op)
            case 1:
                var op = erase(via: pick([.feed, .store, .other]))
                op.inject = true
                candidate = .erase(op)
            default:
                var op = freshWrite(via: pick([.feed, .store, .other]))
                op.inject = true
                op.label = "fresh+inject"
                candidate = .write(op)
                if reachesCommit(candidate) { scriptReuse(of: op) }
            }
            if reachesCommit(candidate) { return candidate }
        }
        return .catchUp
    }

    func reachesCommit(_ op: Op) -> Bool {
        switch op {
        case let .write(write):
            switch model.predictWrite(write.records, key: write.key, payload: write.payload, now: write.now, skew: skew(of: write.via)) {
            case .stored, .replayed: return true
            case .invalid, .conflict: return false
            }
        case let .erase(erase):
            if case .erased = model.predictErase(erase.subject) { return true }
            return false
        default: return false
        }
    }

    /// A large write (or an erasure) with the main store's file capped at its current size.
    func diskFull() -> Op {
        if chance(20) {
            var op = erase(via: pick([.feed, .store]))
            op.cap = true
            return .erase(op)
        }
        let now = clockNow()
        let records = (0..<(1 + below(3))).map { _ in
            validRecord(subject: chance(50) ? subject() : "victim", purpose: chance(50) ? freshName("p") : pick(Hostile.purposes),
                        data: nil, source: chance(50) ? freshName("src") : "web", now: now,
                        evidence: String(repeating: pick(["e", "\u{E9}"]), count: 1800 + below(200)))
        }
        let key = self.key()
        let op = WriteOp(via: pick([.feed, .store]), records: records, key: key, payload: payload(for: key), now: now, cap: true, label: "disk-full")
        scriptReuse(of: op)
        return .write(op)
    }

    /// After a write that may have failed inside its transaction: a write with other new names
    /// (which may get the freed key ids), then the same records again without the fault.
    func scriptReuse(of op: WriteOp) {
        let now = clockNow()
        let others = (0..<(1 + below(2))).map { _ in
            validRecord(subject: pick(["victim", "jos\u{E9}", "jose\u{301}"]), purpose: freshName("p"), data: chance(50) ? freshName("d") : nil,
                        source: freshName("src"), now: now)
        }
        var again = op
        again.inject = false
        again.cap = false
        again.now = now
        again.via = pick([.feed, .store, .other])
        again.label = "reuse-names"
        scripted += [.write(WriteOp(via: pick([.feed, .other]), records: others, key: nil, payload: nil, now: now, label: "other-new-names")), .write(again)]
    }

    func scriptSecondWriter() {
        for _ in 0..<(1 + below(3)) {
            if chance(75) {
                if chance(20), var op = retry() {
                    op.via = .other
                    scripted.append(.write(op))
                } else {
                    scripted.append(.write(freshWrite(via: .other)))
                }
            } else {
                scripted.append(.erase(erase(via: .other)))
            }
        }
        if chance(70) { scripted.append(.catchUp) }
    }

    // MARK: running

    func run() {
        for index in 1...steps {
            step = index
            let op = nextOp()
            currentOp = op.rendered
            log.append("step \(step): \(currentOp)")
            if log.count > 40 { log.removeFirst() }
            let touched = perform(op)
            var erased: [String] = []
            if case .erase = op { erased = touched }
            if failures == 0 { verifyStep(touched: touched, erased: erased, full: false) }
            if failures == 0, step % ModelRunConfiguration.loadEvery == 0 || step == steps { verifyLoad(touched: touched) }
            if failures == 0, step % ModelRunConfiguration.fullCheckEvery == 0 || step == steps { verifyStep(touched: [], full: true) }

            if failures > 0 {
                issues.append("""
                    model run stopped at seed=0x\(String(seed, radix: 16)) step=\(step) (reproduce: CONSENTD_MODEL_SEED=0x\(String(seed, radix: 16)) CONSENTD_MODEL_STEPS=\(step) swift test --filter StoreModelTests)
                    last operations:
                    \(log.joined(separator: "\n"))
                    """)
                return
            }
        }
        print("StoreModelTests seed=0x\(String(seed, radix: 16)) skew=\(mainSkew)µs steps=\(steps): " + stats.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
              + " subjects=\(model.records.count) records=\(model.recordCount) keys=\(model.keys.count)")
    }

    /// What went wrong, recorded by the test once the run (on a thread of its own) is over.
    var issues: [String] = []

    func fail(_ message: String) {
        failures += 1
        issues.append("[seed=0x\(String(seed, radix: 16)) step=\(step) op=\(currentOp)]\n\(message)")
    }

    func count(_ name: String) { stats[name, default: 0] += 1 }

    func instance(_ writer: Writer) -> SQLiteConsentStore { writer == .other ? other : store }

    /// Performs `op` against the implementation and the model; returns the subjects it touched.
    func perform(_ op: Op) -> [String] {
        switch op {
        case let .write(write): return performWrite(write)
        case let .erase(erase): return performErase(erase)
        case .catchUp:
            do {
                try feed.catchUp()
                indexView = model.records
                indexViewSequence = model.lastSequence
            } catch { fail("catchUp threw \(error)") }
            count("catchUp")
            return []
        case let .restart(reopenOther):
            feed = nil
            store = nil
            if reopenOther { other = nil }
            do {
                try openMain()
                if reopenOther { other = try SQLiteConsentStore(path: temporary.path, maximumClockSkew: TimeSpan(microseconds: otherSkew)) }
            } catch { fail("reopening threw \(error)") }
            count("restart")
            return []
        case .checkpoint:
            do { try store.checkpointAndTruncateWAL() } catch { fail("checkpoint threw \(error)") }
            return []
        }
    }

    /// What a rejected operation must leave exactly as it was.
    struct Observed: Equatable {
        var lastSequence: UInt64
        var appliedSequence: UInt64
        var histories: [[ModelRecord]]
        var index: [[IndexRow]]
    }

    func observe(_ subjects: [String]) throws -> Observed {
        let snapshot = feed.index.snapshot()
        return Observed(
            lastSequence: try store.lastSequence(), appliedSequence: snapshot.sequence,
            // An id that is not one has no history: the store refuses to look (compareHistory).
            histories: try subjects.map { ModelRules.identifierProblem($0) != nil ? [] : try store.history(of: $0).map { ModelRecord($0, sequence: $0.sequence) } },
            index: subjects.map { snapshot.records(of: $0).map { IndexRow($0, vocabulary: vocabulary) } }
        )
    }

    func changes(_ before: Observed, _ after: Observed, _ subjects: [String]) -> String {
        var lines = ["lastSequence \(before.lastSequence) → \(after.lastSequence), index sequence \(before.appliedSequence) → \(after.appliedSequence)"]
        for (offset, subject) in subjects.enumerated() {
            if before.histories[offset] != after.histories[offset] {
                lines.append("history(of: \(show(subject))):\n" + diff(after.histories[offset].map(\.rendered), before.histories[offset].map(\.rendered)))
            }
            if before.index[offset] != after.index[offset] {
                lines.append("index records(of: \(show(subject))):\n" + diff(after.index[offset].map(\.rendered), before.index[offset].map(\.rendered)))
            }
        }
        return lines.joined(separator: "\n") + "\n(\"got\" is after, \"model\" is before)"
    }

    func performWrite(_ op: WriteOp) -> [String] {
        let touched = lookupSet(op.records.map(\.subject))
        let target = instance(op.via)
        let expected = model.predictWrite(op.records, key: op.key, payload: op.payload, now: op.now, skew: skew(of: op.via))
        if let key = op.key {
            keyedAttempts.append((key, op.records, op.payload))
            if keyedAttempts.count > 48 { keyedAttempts.removeFirst() }
        }
        // What a write that stores nothing must leave as it was (not needed when the model
        // expects a plain commit: any refusal of it is a divergence by itself).
        var plainCommit = false
        if case .stored = expected, !op.inject, !op.cap { plainCommit = true }
        var before: Observed?
        if !plainCommit {
            do { before = try observe(touched) } catch { fail("observing before the write threw \(error)"); return touched }
        }

        var result: Result<AppendResult, Error>
        do {
            if op.inject { target.failNextWrites(1) }
            if op.cap { try target.setMaximumPageCount(try target.pageCount()) }
            let now = Timestamp(microseconds: op.now)
            result = Result {
                try (op.via == .feed ? feed.record(op.records, idempotencyKey: op.key, payload: op.payload, now: now)
                                     : target.append(op.records, idempotencyKey: op.key, payload: op.payload, now: now))
            }
            if op.inject { target.failNextWrites(0) }
            if op.cap { try target.setMaximumPageCount(0) }
        } catch {
            fail("setting up or tearing down the fault threw \(error)")
            return touched
        }

        func code(_ result: Result<AppendResult, Error>) -> StoreError.Code? {
            if case let .failure(error) = result { return (error as? StoreError)?.code }
            return nil
        }
        var committed: [UInt64]?
        switch expected {
        case let .invalid(reason):
            count("invalid")
            if code(result) != .invalidRecord { fail("expected an invalid-record error (model: \(reason)), got \(result)") }
        case .conflict:
            count("conflict")
            if code(result) != .idempotencyConflict { fail("expected an idempotency conflict, got \(result)") }
        case let .stored(sequences), let .replayed(sequences):
            let replay: Bool = if case .replayed = expected { true } else { false }
            if op.inject {
                count("injected")
                if code(result) != .database { fail("expected the injected failure (a database error), got \(result)") }
            } else if op.cap, !replay, code(result) == .database {
                count("diskFull.refused")
                if case let .failure(error) = result, !"\(error)".contains("full") { fail("a capped write failed, but not for a full disk: \(error)") }
            } else {
                switch result {
                case let .success(value):
                    if value != AppendResult(sequences: sequences, replayed: replay) {
                        fail("expected \(AppendResult(sequences: sequences, replayed: replay)), got \(value)")
                    } else if !replay {
                        committed = sequences
                    }
                    count(replay ? "replayed" : op.cap ? "diskFull.fit" : "stored")
                case let .failure(error):
                    fail("expected \(replay ? "a replay of" : "to store at") \(sequences), got \(error)")
                }
            }
        }
        if let committed {
            model.commitWrite(op.records, key: op.key, payload: op.payload, sequences: committed)
        }
        if case .success = result, op.via == .feed {
            indexView = model.records
            indexViewSequence = model.lastSequence
        }
        if committed == nil, failures == 0, let before {
            // A rejected write changes nothing anywhere; a replay stores nothing (through the
            // feed it may still catch the index up with other writers' commits).
            do {
                var after = try observe(touched)
                if case .success = result, op.via == .feed {
                    after.appliedSequence = before.appliedSequence
                    after.index = before.index
                }
                if after != before { fail("a write that stored nothing changed the store or the index:\n\(changes(before, after, touched))") }
            } catch { fail("observing after the write threw \(error)") }
        }
        return touched
    }

    func performErase(_ op: EraseOp) -> [String] {
        let touched = lookupSet([op.subject])
        let target = instance(op.via)
        let expected = model.predictErase(op.subject)
        var plainCommit = false
        if case .erased = expected, !op.inject, !op.cap { plainCommit = true }
        var before: Observed?
        var tombstonesBefore: [ErasureTombstone] = []
        if !plainCommit {
            do {
                before = try observe(touched)
                tombstonesBefore = try tombstones(of: op.subject)
            } catch { fail("observing before the erasure threw \(error)"); return touched }
        }

        var result: Result<ErasureTombstone, Error>
        do {
            if op.inject { target.failNextWrites(1) }
            if op.cap { try target.setMaximumPageCount(try target.pageCount()) }
            let now = Timestamp(microseconds: op.now)
            result = Result { try (op.via == .feed ? feed.erase(subject: op.subject, now: now) : target.erase(subject: op.subject, now: now)) }
            if op.inject { target.failNextWrites(0) }
            if op.cap { try target.setMaximumPageCount(0) }
        } catch {
            fail("setting up or tearing down the fault threw \(error)")
            return touched
        }
        let code: StoreError.Code? = if case let .failure(error) = result { (error as? StoreError)?.code } else { nil }
        var committed = false
        switch expected {
        case let .invalid(reason):
            count("erase.invalid")
            if code != .invalidRecord { fail("expected an invalid-subject error (model: \(reason)), got \(result)") }
        case let .erased(sequence, recordCount):
            if op.inject {
                count("erase.injected")
                if code != .database { fail("expected the injected failure (a database error), got \(result)") }
            } else if op.cap, code == .database {
                count("erase.diskFull.refused")
                if case let .failure(error) = result, !"\(error)".contains("full") { fail("a capped erasure failed, but not for a full disk: \(error)") }
            } else {
                switch result {
                case let .success(tombstone):
                    let wanted = ErasureTombstone(sequence: sequence, subjectHash: target.subjectHash(op.subject), erasedAt: Timestamp(microseconds: op.now), recordCount: recordCount)
                    if tombstone != wanted { fail("expected tombstone \(wanted), got \(tombstone)") } else { committed = true }
                    count("erased")
                case let .failure(error):
                    fail("expected the erasure to succeed, got \(error)")
                }
            }
        }
        if committed { model.commitErase(op.subject, now: op.now) }
        if case .success = result, op.via == .feed {
            indexView = model.records
            indexViewSequence = model.lastSequence
        }
        if !committed, failures == 0, let before {
            do {
                let after = try observe(touched)
                if after != before { fail("a refused erasure changed the store or the index:\n\(changes(before, after, touched))") }
                if try tombstones(of: op.subject) != tombstonesBefore { fail("a refused erasure left a tombstone") }
            } catch { fail("observing after the erasure threw \(error)") }
        }
        return touched
    }

    /// The subjects and their look-alikes, deduplicated by bytes.
    func lookupSet(_ subjects: [String]) -> [String] {
        var seen = Set<Bytes>()
        return (subjects.flatMap(twins(of:)) + ["victim", "victim\u{0}x", "victim\u{0}"]).filter { seen.insert(Array($0.utf8)).inserted }
    }

    // MARK: checking

    func verifyStep(touched: [String], erased: [String] = [], full: Bool) {
        do {
            let last = try store.lastSequence()
            if last != model.lastSequence { fail("lastSequence \(last), model \(model.lastSequence)") }
            if full {
                let otherLast = try other.lastSequence()
                if otherLast != model.lastSequence { fail("the second writer's lastSequence \(otherLast), model \(model.lastSequence)") }
            }

            // (1) The live index against what it must show (the model as of its last catch-up).
            compareIndex("feed index", feed.index, view: indexView, sequence: indexViewSequence, extra: touched)

            // (3) History of every touched subject (and its look-alikes), bytes and all.
            for subject in touched { compareHistory(subject, in: store) }
            // Tombstones are per exact subject bytes (checked for every subject at full checks).
            for subject in erased {
                let wanted = (model.tombstones[Array(subject.utf8)] ?? []).map {
                    ErasureTombstone(sequence: $0.sequence, subjectHash: store.subjectHash(subject), erasedAt: Timestamp(microseconds: $0.erasedAt), recordCount: $0.count)
                }
                let got = try tombstones(of: subject)
                if got != wanted { fail("erasures(of: \(show(subject))): got \(got), model \(wanted)") }
            }

            guard full else { return }
            // Every stored record, in store order, from both connections.
            let flattened = model.records.values.flatMap { $0 }.sorted { $0.sequence < $1.sequence }
            for (name, reader) in step % (5 * ModelRunConfiguration.fullCheckEvery) == 0 ? [("main", store!), ("second writer", other!)] : [("main", store!)] {
                var all: [ModelRecord] = []
                try reader.forEachRecord { all.append(ModelRecord($0, sequence: $0.sequence)) }
                if all != flattened {
                    fail("forEachRecord (\(name)) differs from the model:\n\(diff(all.map(\.rendered), flattened.map(\.rendered)))")
                }
            }
            // The idempotency keys left in the store are exactly the model's (an erasure drops
            // the keys of writes that stored one of the subject's records).
            let keys = try storedIdempotencyKeys()
            let wanted = model.keys.mapValues { [$0.sequences.first ?? 0, UInt64($0.sequences.count)] }
            if keys != wanted {
                let extra = keys.keys.filter { wanted[$0] == nil }.map(show)
                let missing = wanted.keys.filter { keys[$0] == nil }.map(show)
                let differing = wanted.keys.filter { keys[$0] != nil && keys[$0] != wanted[$0] }.map { "\(show($0)): \(keys[$0]!) vs \(wanted[$0]!)" }
                fail("idempotency keys differ: in the store only \(extra), in the model only \(missing), differing \(differing)")
            }
            // Every tombstone, and nothing else, in the erasures table (white box, one query; the
            // public `erasures(of:)` is checked for each erased subject at its step).
            let tombstones = model.tombstones.flatMap { subject, tombstones in
                let hash = subjectHash(subject)
                return tombstones.map { (sequence: $0.sequence, row: "#\($0.sequence) \(hash) at \($0.erasedAt) count \($0.count)", subject: show(subject)) }
            }.sorted { $0.sequence < $1.sequence }
            let storedTombstones = try storedTombstoneRows()
            if storedTombstones != tombstones.map(\.row) {
                fail("erasure tombstones differ from the model:\n\(diff(storedTombstones, tombstones.map { "\($0.row) \($0.subject)" }))")
            }
            if try store.integrityCheck() != "ok" { fail("integrity check failed") }
        } catch {
            fail("checking threw \(error)")
        }
    }

    /// (2) A fresh load from the store equals the model.
    func verifyLoad(touched: [String]) {
        do {
            let loaded = try ConsentFeed(store: store, vocabulary: Vocabulary())
            compareIndex("fresh load", loaded.index, view: model.records, sequence: model.lastSequence, extra: touched)
        } catch { fail("loading a fresh index threw \(error)") }
    }

    func compareIndex(_ label: String, _ index: ConsentIndex, view: [Bytes: [ModelRecord]], sequence: UInt64, extra: [String]) {
        let snapshot = index.snapshot()
        if snapshot.sequence != sequence { fail("\(label): sequence \(snapshot.sequence), model \(sequence)") }
        let records = view.values.reduce(0) { $0 + $1.count }
        if snapshot.subjectCount != view.count || snapshot.recordCount != records {
            fail("\(label): \(snapshot.subjectCount) subjects / \(snapshot.recordCount) records, model \(view.count) / \(records)")
        }
        var subjects = view.keys.map { String(decoding: $0, as: UTF8.self) }
        subjects += extra.filter { view[Array($0.utf8)] == nil }
        for subject in subjects {
            let got = snapshot.records(of: subject).map { IndexRow($0, vocabulary: index.vocabulary) }
            let wanted = (view[Array(subject.utf8)] ?? []).map(IndexRow.init)
            if got != wanted {
                fail("\(label): records(of: \(show(subject))) differ from the model:\n\(diff(got.map(\.rendered), wanted.map(\.rendered)))")
            }
        }
    }

    /// The store's tombstones of `subject`; an id that is not one has none, and asking is refused.
    func tombstones(of subject: String) throws -> [ErasureTombstone] {
        guard ModelRules.identifierProblem(subject) != nil else { return try store.erasures(of: subject) }
        do {
            let got = try store.erasures(of: subject)
            fail("erasures(of: \(show(subject))) answered \(got.count) tombstones for an id that is not one")
        } catch let error as StoreError where error.code == .invalidRecord && error.message.hasPrefix("subject_id ") {}
        return []
    }

    func compareHistory(_ subject: String, in reader: SQLiteConsentStore) {
        if let problem = ModelRules.identifierProblem(subject) {
            // Not an id: refused as invalid, never answered with someone else's records or "none".
            do {
                let got = try reader.history(of: subject)
                fail("history(of: \(show(subject))) (\(problem)) answered \(got.count) records instead of refusing")
            } catch let error as StoreError where error.code == .invalidRecord && error.message.hasPrefix("subject_id ") {
            } catch { fail("history(of: \(show(subject))) (\(problem)) threw \(error)") }
            return
        }
        do {
            let got = try reader.history(of: subject).map { ModelRecord($0, sequence: $0.sequence) }
            let wanted = model.records[Array(subject.utf8)] ?? []
            if got != wanted { fail("history(of: \(show(subject))) differs from the model:\n\(diff(got.map(\.rendered), wanted.map(\.rendered)))") }
        } catch { fail("history(of: \(show(subject))) threw \(error)") }
    }

    func diff(_ got: [String], _ wanted: [String]) -> String {
        var lines: [String] = []
        for index in 0..<max(got.count, wanted.count) {
            let g = index < got.count ? got[index] : "—"
            let w = index < wanted.count ? wanted[index] : "—"
            lines.append(g == w ? "    \(g)" : "  got    \(g)\n  model  \(w)")
        }
        return lines.joined(separator: "\n")
    }

    /// The store's keyed hash of a subject id (the erasure key never changes for a file).
    func subjectHash(_ subject: Bytes) -> String {
        if let hash = subjectHashes[subject] { return hash }
        let hash = store.subjectHash(String(decoding: subject, as: UTF8.self))
        subjectHashes[subject] = hash
        return hash
    }

    /// "#sequence hash at erased_at count record_count" for every row of the `erasures` table, in order.
    func storedTombstoneRows() throws -> [String] {
        try store.withDatabaseErrors {
            try store.pool.read { db in
                var rows: [String] = []
                try db.exactQuery("SELECT CAST(sequence AS TEXT), subject_hash, CAST(erased_at AS TEXT), CAST(record_count AS TEXT) FROM erasures ORDER BY sequence", []) { row in
                    rows.append("#\(columnText(row, 0) ?? "?") \(columnText(row, 1) ?? "?") at \(columnText(row, 2) ?? "?") count \(columnText(row, 3) ?? "?")")
                }
                return rows
            }
        }
    }

    /// Key → [first sequence, count] as stored (white box: the `idempotency_keys` table).
    func storedIdempotencyKeys() throws -> [Bytes: [UInt64]] {
        try store.withDatabaseErrors {
            try store.pool.read { db in
                var keys: [Bytes: [UInt64]] = [:]
                try db.exactQuery("SELECT key, CAST(first_sequence AS TEXT), CAST(count AS TEXT) FROM idempotency_keys", []) { row in
                    keys[Array((columnText(row, 0) ?? "").utf8)] = [UInt64(columnText(row, 1) ?? "") ?? 0, UInt64(columnText(row, 2) ?? "") ?? 0]
                }
                return keys
            }
        }
    }
}

// MARK: - Tests

@Suite(.serialized) struct StoreModelTests {
    @Test(arguments: ModelRunConfiguration.seeds)
    func randomOperationSequencesMatchTheReferenceModel(seed: UInt64) async throws {
        if let text = ModelRunConfiguration.environment["CONSENTD_MODEL_SEED"], ModelRunConfiguration.parse(text) == nil {
            Issue.record("CONSENTD_MODEL_SEED=\(text) is not a decimal or 0x-hex number")
            return
        }
        // The model's calendar constants are the store's documented range.
        #expect(ModelRules.earliest == Timestamp.minimumValid.microseconds)
        #expect(ModelRules.latest == Timestamp.maximumValid.microseconds)
        // On a thread of its own: a long CPU-bound run must not hold one of the few threads of
        // Swift's cooperative pool that other suites' async work (a store follower's polling) needs.
        let issues = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[String], Error>) in
            let thread = Thread {
                // At the lowest priority too: the run is long and CPU-bound, and suites that
                // measure how promptly something happens (a follower's delay) run beside it.
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)  // 0: this thread (Linux keeps nice per thread)
                continuation.resume(with: Result {
                    let harness = try ModelHarness(seed: seed, steps: ModelRunConfiguration.steps)
                    harness.run()
                    return harness.issues
                })
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        for issue in issues { Issue.record(Comment(rawValue: issue)) }
    }

    /// A write that interns new purpose/data/source names and then rolls back must not leave a
    /// name→id mapping behind: SQLite hands the freed ids to the next new names.
    @Test(arguments: [false, true])
    func namesInternedByARolledBackWriteKeepTheirMeaning(secondWriterInBetween: Bool) throws {
        let temporary = TemporaryStore()
        let store = try temporary.open()
        let other = try temporary.open()
        let vocabulary = Vocabulary()
        let feed = try ConsentFeed(store: store, vocabulary: vocabulary)
        let now = at("2026-03-01T00:00:00Z")
        func write(_ purpose: String, _ data: String, _ source: String) -> ConsentRecord {
            ConsentRecord(subject: "alice", purpose: purpose, dataCategory: data, choice: .grant, recordedAt: now, source: source)
        }

        store.failNextWrites(1)
        #expect {
            _ = try feed.record([write("p.one", "d.one", "src1")], now: now)
        } throws: { error in
            (error as? StoreError)?.code == .database
        }
        #expect(try store.lastSequence() == 0)
        #expect(try store.history(of: "alice").isEmpty)

        // New names take the ids the rolled-back write had used, in this process or another.
        let second = try (secondWriterInBetween ? other.append([write("p.two", "d.two", "src2")], now: now)
                                                : feed.record([write("p.two", "d.two", "src2")], now: now))
        #expect(second.sequences == [1])
        let third = try feed.record([write("p.one", "d.one", "src1")], now: now)
        #expect(third.sequences == [2])
        let fourth = try store.append([write("p.two", "d.one", "src1"), write("p.one", "d.two", "src2")], now: now)
        #expect(fourth.sequences == [3, 4])
        try feed.catchUp()

        let expected = [["p.two", "d.two", "src2"], ["p.one", "d.one", "src1"], ["p.two", "d.one", "src1"], ["p.one", "d.two", "src2"]]
        for reader in [store, other, try temporary.open()] {
            #expect(try reader.history(of: "alice").map { [$0.purpose, $0.dataCategory ?? "nil", $0.source] } == expected)
        }
        func names(_ index: ConsentIndex) -> [[String]] {
            index.snapshot().records(of: "alice").map {
                [index.vocabulary.purposes.name($0.purpose) ?? "?", index.vocabulary.dataCategories.name($0.dataCategory) ?? "?",
                 index.vocabulary.sources.name($0.source) ?? "?"]
            }
        }
        #expect(names(feed.index) == expected)
        #expect(names(try ConsentFeed(store: store, vocabulary: Vocabulary()).index) == expected)
        #expect(names(try ConsentFeed(store: try temporary.open(), vocabulary: Vocabulary()).index) == expected)
    }
}
