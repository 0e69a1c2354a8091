import ConsentModel

/// A deterministic, seeded generator of realistic consent histories, for load tests and
/// benchmarks (`consentctl consent generate`, the benchmark suite).
///
/// Each subject gets 1–5 records over the two years before `now`, in time order: mostly
/// grants, some withdrawals, some narrowed to a data category, some expiring, with notice
/// versions and sources spread like a real consent platform's.
public struct SyntheticPopulation: Sequence {
    /// Purpose keys records may name.
    public var purposes: [String]
    /// Data-category keys records may be narrowed to.
    public var dataCategories: [String]
    /// Number of subjects.
    public var subjects: Int
    /// The generator's seed: the same seed gives the same population.
    public var seed: UInt64
    /// Records are made in the two years before this instant.
    public var now: Timestamp

    /// Creates a population description.
    public init(purposes: [String], dataCategories: [String], subjects: Int, seed: UInt64, now: Timestamp) {
        self.purposes = purposes
        self.dataCategories = dataCategories
        self.subjects = subjects
        self.seed = seed
        self.now = now
    }

    /// The id of subject number `index`: `customer-` and ten digits.
    public static func subjectID(_ index: Int) -> String {
        let digits = String(index)
        return "customer-" + String(repeating: "0", count: Swift.max(0, 10 - digits.count)) + digits
    }

    static let sources = ["web", "web", "app", "app", "import", "tcf", "gpc"]
    static let jurisdictions = ["DE", "FR", "NL", "GB", "US-CA", "US-TX", "US-ME", "US-NY", nil]

    /// Records of every subject, subject by subject, each subject's in time order.
    public func makeIterator() -> AnyIterator<ConsentRecord> {
        var rng = SplitMix64(seed: seed)
        var subject = 0
        var pending: [ConsentRecord] = []
        var sequence: UInt64 = 0
        let twoYears: Int64 = 2 * 365 * 86_400_000_000
        return AnyIterator {
            while pending.isEmpty {
                guard subject < subjects else { return nil }
                let id = SyntheticPopulation.subjectID(subject)
                subject += 1
                let count = Int(rng.next() % 5) + 1
                var at = now.microseconds - twoYears + Int64(rng.next() % UInt64(twoYears / 2))
                for _ in 0..<count {
                    sequence += 1
                    at += Int64(rng.next() % UInt64(twoYears / 10))
                    let roll = rng.next() % 100
                    var record = ConsentRecord(
                        sequence: sequence, subject: id,
                        purpose: purposes[Int(rng.next() % UInt64(purposes.count))],
                        dataCategory: roll < 25 && !dataCategories.isEmpty ? dataCategories[Int(rng.next() % UInt64(dataCategories.count))] : nil,
                        choice: rng.next() % 100 < 72 ? .grant : .deny,
                        recordedAt: Timestamp(microseconds: Swift.min(at, now.microseconds)),
                        source: SyntheticPopulation.sources[Int(rng.next() % UInt64(SyntheticPopulation.sources.count))],
                        noticeVersion: UInt32(rng.next() % 3 + 1),
                        jurisdiction: SyntheticPopulation.jurisdictions[Int(rng.next() % UInt64(SyntheticPopulation.jurisdictions.count))]
                    )
                    if rng.next() % 100 < 15 {
                        record.expiresAt = Timestamp(microseconds: record.recordedAt.microseconds + Int64(rng.next() % UInt64(twoYears)))
                    }
                    pending.append(record)
                }
                pending.reverse()
            }
            return pending.popLast()
        }
    }
}

/// SplitMix64: a tiny, fast, seedable generator (not for cryptography).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator; the same seed gives the same sequence.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
