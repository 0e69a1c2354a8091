import ConsentModel

/// Attributes of a taxonomy key that the engine or reports use.
public struct KeyAttributes: Sendable {
    public var description: String?
    public var sensitive = false
    public var saleOrSharing = false
    public var tcfPurposes: [Int] = []
    public var tcfSpecialFeature: Int?
    /// GPP US section id → 1-based position in its SensitiveDataProcessing list.
    public var gppSensitiveData: [Int: Int] = [:]
    public var labels: [String: String] = [:]
}

/// An immutable, compiled policy set: interned taxonomies with precomputed ancestry, rules
/// indexed by purpose, and jurisdictions as a bit matrix. Built once by `PolicyCompiler`,
/// shared by every thread, swapped whole on reload.
public final class PolicySet: Sendable {
    /// Content hash of every policy file in the set (16 hex digits of SHA-256).
    public let revision: String
    /// The vocabulary the set was compiled against; consent records must use the same one.
    public let vocabulary: Vocabulary
    /// The purpose tree.
    public let purposes: KeyTree
    /// The data-category tree.
    public let dataCategories: KeyTree
    /// Purpose attributes by key.
    public let purposeAttributes: [String: KeyAttributes]
    /// Data-category attributes by key.
    public let dataAttributes: [String: KeyAttributes]
    /// Jurisdiction groups by name, members as written.
    public let jurisdictionGroups: [String: [String]]
    /// The rules, in set order.
    public let rules: [RuleInfo]
    /// The effect when no rule matches.
    public let defaultEffect: Effect
    /// Paths of the files in the set, in path order.
    public let files: [String]
    /// The TCF vendor id TC strings are checked for when a request names none (`tcf_vendor_id`).
    public let tcfVendorId: Int?

    let cores: [RuleCore]
    let ruleData: [UInt32]
    /// Per purpose id: range into `candidates`.
    let candidateStart: [Int32]
    let candidateCount: [Int32]
    /// (rule index, depth of the deepest rule purpose key covering the purpose) in rule order.
    let candidates: [(rule: Int32, purposeDepth: Int32)]
    let jurisdictions: JurisdictionTable
    let channelBits: [String: UInt64]
    let channelTable: ByteKeyTable<UInt64>
    /// Per purpose id: the signal bits a `sale_or_sharing` purpose turns GPC/USP into.
    let saleOrSharing: [Bool]
    /// Per purpose id: the TCF purposes it maps to (bit p-1 for purpose p), from the nearest
    /// key at or above it that states `tcf_purposes`; 0: the TCF does not bear on it.
    let tcfPurposes: [UInt32]
    /// Per data-category id: its TCF special feature (nearest key at or above), 0 for none.
    let tcfSpecialFeature: [UInt8]
    /// Per data-category id: its SensitiveDataProcessing position in each US section, 0 for none.
    let gppSensitive: [SensitivePositions]

    init(
        revision: String, vocabulary: Vocabulary, purposes: KeyTree, dataCategories: KeyTree,
        purposeAttributes: [String: KeyAttributes], dataAttributes: [String: KeyAttributes],
        jurisdictionGroups: [String: [String]], rules: [RuleInfo], cores: [RuleCore], ruleData: [UInt32],
        rulePurposes: [[UInt32]], jurisdictionMatchers: [[JurisdictionMatcher]?], channelBits: [String: UInt64],
        defaultEffect: Effect, files: [String], tcfVendorId: Int? = nil
    ) {
        self.tcfVendorId = tcfVendorId
        self.revision = revision
        self.vocabulary = vocabulary
        self.purposes = purposes
        self.dataCategories = dataCategories
        self.purposeAttributes = purposeAttributes
        self.dataAttributes = dataAttributes
        self.jurisdictionGroups = jurisdictionGroups
        self.rules = rules
        self.cores = cores
        self.ruleData = ruleData
        self.defaultEffect = defaultEffect
        self.files = files
        self.jurisdictions = JurisdictionTable(rules: jurisdictionMatchers)
        self.channelBits = channelBits
        self.channelTable = ByteKeyTable(channelBits.map { ($0.key, $0.value) })

        let idCount = purposes.depths.count
        var start = [Int32](repeating: 0, count: idCount)
        var count = [Int32](repeating: 0, count: idCount)
        var flat: [(rule: Int32, purposeDepth: Int32)] = []
        var sale = [Bool](repeating: false, count: idCount)
        for key in purposes.keys {
            let id = purposes.id(of: key)!
            start[Int(id)] = Int32(flat.count)
            for (ruleIndex, keys) in rulePurposes.enumerated() {
                if keys.isEmpty {
                    flat.append((Int32(ruleIndex), 0))
                    continue
                }
                var best = 0
                for ruleKey in keys where purposes.covers(ruleKey, id) { best = max(best, purposes.depth(ruleKey)) }
                if best > 0 { flat.append((Int32(ruleIndex), Int32(best))) }
            }
            count[Int(id)] = Int32(flat.count) - start[Int(id)]
            // sale_or_sharing is inherited: a descendant of a sale purpose is a sale purpose too.
            sale[Int(id)] = purposes.keys.contains { ancestor in
                purposeAttributes[ancestor]?.saleOrSharing == true && purposes.covers(purposes.id(of: ancestor)!, id)
            }
        }
        self.candidateStart = start
        self.candidateCount = count
        self.candidates = flat
        self.saleOrSharing = sale
        // TCF mappings and sensitive positions are inherited from the nearest key that states them.
        func nearest<T>(_ tree: KeyTree, _ attributes: [String: KeyAttributes], _ id: UInt32, _ value: (KeyAttributes) -> T?) -> T? {
            var best: (depth: Int, value: T)?
            for key in tree.keys {
                guard let attribute = attributes[key], let found = value(attribute), let keyID = tree.id(of: key), tree.covers(keyID, id) else { continue }
                if best == nil || tree.depth(keyID) > best!.depth { best = (tree.depth(keyID), found) }
            }
            return best?.value
        }
        var tcf = [UInt32](repeating: 0, count: idCount)
        for key in purposes.keys {
            let id = purposes.id(of: key)!
            let mapped = nearest(purposes, purposeAttributes, id) { $0.tcfPurposes.isEmpty ? nil : $0.tcfPurposes } ?? []
            tcf[Int(id)] = mapped.reduce(0) { $0 | 1 << UInt32($1 - 1) }
        }
        self.tcfPurposes = tcf
        let dataCount = dataCategories.depths.count
        var feature = [UInt8](repeating: 0, count: dataCount)
        var sensitive = [SensitivePositions](repeating: SensitivePositions(), count: dataCount)
        for key in dataCategories.keys {
            let id = dataCategories.id(of: key)!
            feature[Int(id)] = UInt8(nearest(dataCategories, dataAttributes, id) { $0.tcfSpecialFeature } ?? 0)
            let positions = nearest(dataCategories, dataAttributes, id) { $0.gppSensitiveData.isEmpty ? nil : $0.gppSensitiveData } ?? [:]
            for (section, position) in positions { sensitive[Int(id)][section] = UInt8(position) }
        }
        self.tcfSpecialFeature = feature
        self.gppSensitive = sensitive
    }

}

extension PolicySet {
    /// Why a consent record's keys do not belong to this set — a purpose or data category outside
    /// its taxonomy, with a "did you mean" — or nil when both do. The one check of record keys
    /// against a taxonomy: the daemon's RecordConsent and consentctl's writes and imports use it.
    /// - Parameter taxonomy: how the message names the taxonomy.
    public func keyProblem(purpose: String, dataCategory: String?, taxonomy: String = "the policy taxonomy") -> String? {
        if !purposes.contains(purpose) {
            return "purpose '\(purpose)' is not in \(taxonomy)" + (Suggest.didYouMean(purpose, in: purposes.keys).map { "; \($0)" } ?? "")
        }
        if let dataCategory, !dataCategories.contains(dataCategory) {
            return "data category '\(dataCategory)' is not in \(taxonomy)" + (Suggest.didYouMean(dataCategory, in: dataCategories.keys).map { "; \($0)" } ?? "")
        }
        return nil
    }
}

/// A data category's 1-based position in each GPP US section's SensitiveDataProcessing list
/// (sections 7…12), 0 where the taxonomy gives none. Fixed size: read on the hot path.
public struct SensitivePositions: Sendable, Equatable {
    var positions: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)

    public init() {}

    public static let sections = 7...12

    /// The position in section `id` (7…12), 0 for none or another id.
    public subscript(id: Int) -> UInt8 {
        get {
            switch id {
            case 7: positions.0
            case 8: positions.1
            case 9: positions.2
            case 10: positions.3
            case 11: positions.4
            case 12: positions.5
            default: 0
            }
        }
        set {
            switch id {
            case 7: positions.0 = newValue
            case 8: positions.1 = newValue
            case 9: positions.2 = newValue
            case 10: positions.3 = newValue
            case 11: positions.4 = newValue
            case 12: positions.5 = newValue
            default: break
            }
        }
    }

    public var isEmpty: Bool { positions == (0, 0, 0, 0, 0, 0) }

    public static func == (lhs: SensitivePositions, rhs: SensitivePositions) -> Bool { lhs.positions == rhs.positions }
}
