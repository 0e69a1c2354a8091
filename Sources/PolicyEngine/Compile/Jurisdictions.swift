import ConsentModel

/// One element of a rule's or group's jurisdiction list, after names are resolved.
enum JurisdictionMatcher: Hashable, Sendable, CustomStringConvertible {
    /// `DE`: the country and every subdivision of it (`DE-BY`).
    case country(String)
    /// `US-CA`: exactly that subdivision.
    case subdivision(String)
    /// `US-*`: every subdivision of the country, not the country code alone.
    case subdivisionsOf(String)

    /// Parses a code or pattern; nil when the text is neither. Allocation-free for valid codes.
    init?(code: String) {
        guard let shape = JurisdictionMatcher.shape(code) else { return nil }
        switch shape {
        case .country: self = .country(code)
        case .subdivision: self = .subdivision(code)
        case .pattern: self = .subdivisionsOf(String(code.utf8.prefix(2))!)
        }
    }

    enum Shape { case country, subdivision, pattern }

    /// `CC`, `CC-X{1,3}` (X uppercase letters or digits) or `CC-*`, checked on the UTF-8 bytes.
    static func shape(_ code: String) -> Shape? {
        var count = 0
        var shape = Shape.country
        for byte in code.utf8 {
            let upper = byte >= 65 && byte <= 90
            switch count {
            case 0, 1: guard upper else { return nil }
            case 2: guard byte == UInt8(ascii: "-") else { return nil }
            case 3:
                if byte == UInt8(ascii: "*") { shape = .pattern } else {
                    guard upper || (byte >= 48 && byte <= 57) else { return nil }
                    shape = .subdivision
                }
            case 4, 5:
                guard shape == .subdivision, upper || (byte >= 48 && byte <= 57) else { return nil }
            default: return nil
            }
            count += 1
        }
        guard count == 2 || count >= 4 else { return nil }
        return shape
    }

    var countryCode: String {
        switch self {
        case let .country(c), let .subdivisionsOf(c): c
        case let .subdivision(s): String(s.utf8.prefix(2))!
        }
    }

    var description: String {
        switch self {
        case let .country(c): c
        case let .subdivision(s): s
        case let .subdivisionsOf(c): "\(c)-*"
        }
    }

    /// Whether a request from `code` (a country or subdivision; `nil` subdivision = unlisted one) matches.
    func matches(country: String, subdivision: String?, isCountryOnly: Bool) -> Bool {
        switch self {
        case let .country(c): return c == country
        case let .subdivision(s): return !isCountryOnly && subdivision == s
        case let .subdivisionsOf(c): return !isCountryOnly && c == country
        }
    }

    /// Whether every code this matcher matches is also matched by `other`.
    func isContained(in other: JurisdictionMatcher) -> Bool {
        switch (self, other) {
        case let (.country(a), .country(b)): a == b
        case let (.subdivision(a), .subdivision(b)): a == b
        case let (.subdivision(a), .country(c)), let (.subdivision(a), .subdivisionsOf(c)): a.hasPrefix(c + "-")
        case let (.subdivisionsOf(a), .country(b)), let (.subdivisionsOf(a), .subdivisionsOf(b)): a == b
        default: false
        }
    }
}

/// Request jurisdictions grouped into classes that every rule treats alike, and for each class the
/// set of rules it satisfies, as a bit matrix. A request's code maps to its class with one
/// dictionary lookup; a rule check is then one bit test.
struct JurisdictionTable: Sendable {
    /// Class 0: no jurisdiction, or a valid code that no rule or group names.
    static let unlisted: Int32 = 0
    /// Exact code (country or subdivision) → class.
    let classes: ByteKeyTable<Int32>
    /// Country code → class of its subdivisions that are not listed themselves.
    let unlistedSubdivisions: [String: Int32]
    let unlistedSubdivisionTable: ByteKeyTable<Int32>
    /// `bits[class * words + rule / 64] >> (rule % 64) & 1`: the rule accepts the class.
    let bits: [UInt64]
    let words: Int

    init(rules: [[JurisdictionMatcher]?]) {
        var codes = Set<String>()
        var countries = Set<String>()
        for matchers in rules.compactMap({ $0 }) {
            for matcher in matchers {
                countries.insert(matcher.countryCode)
                switch matcher {
                case let .country(c): codes.insert(c)
                case let .subdivision(s): codes.insert(s)
                case .subdivisionsOf: break
                }
            }
        }
        for country in countries { codes.insert(country) }
        var classes: [String: Int32] = [:]
        var unlisted: [String: Int32] = [:]
        // Representatives: (country, subdivision or nil for an unlisted one, country-only?)
        var representatives: [(String, String?, Bool)] = [("", nil, true)]
        for code in codes.sorted() {
            classes[code] = Int32(representatives.count)
            representatives.append((String(code.prefix(2)), code.count == 2 ? nil : code, code.count == 2))
        }
        for country in countries.sorted() {
            unlisted[country] = Int32(representatives.count)
            representatives.append((country, nil, false))
        }
        let words = max(1, (rules.count + 63) / 64)
        var bits = [UInt64](repeating: 0, count: representatives.count * words)
        for (classIndex, (country, subdivision, countryOnly)) in representatives.enumerated() {
            for (ruleIndex, matchers) in rules.enumerated() {
                let accepted: Bool
                if let matchers {
                    accepted = classIndex != 0 && matchers.contains { $0.matches(country: country, subdivision: subdivision, isCountryOnly: countryOnly) }
                } else {
                    accepted = true
                }
                if accepted { bits[classIndex * words + ruleIndex / 64] |= 1 << UInt64(ruleIndex % 64) }
            }
        }
        self.classes = ByteKeyTable(classes.map { ($0.key, $0.value) })
        self.unlistedSubdivisions = unlisted
        self.unlistedSubdivisionTable = ByteKeyTable(unlisted.map { ($0.key, $0.value) })
        self.bits = bits
        self.words = words
    }

    /// The class of a request's jurisdiction, or nil when the text is not an ISO 3166 code.
    @inline(__always)
    func classOf(_ code: String?) -> Int32? {
        guard let code else { return JurisdictionTable.unlisted }
        if let found = classes[code] { return found }
        return slowClassOf(code)
    }

    private func slowClassOf(_ raw: String) -> Int32? {
        // ISO 3166 codes are ASCII: anything else is not a code. Case is folded on ASCII letters
        // only (Unicode upper-casing would turn "uſ" into "US").
        guard raw.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
        if raw.utf8.contains(where: { $0 >= 97 && $0 <= 122 }) {
            let code = String(decoding: raw.utf8.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 }, as: UTF8.self)
            if let found = classes[code] { return found }
            return classOfUnlisted(code)
        }
        return classOfUnlisted(raw)
    }

    /// A valid code that no rule or group names: its country's unlisted-subdivision class, or class 0.
    private func classOfUnlisted(_ code: String) -> Int32? {
        switch JurisdictionMatcher.shape(code) {
        case nil, .pattern?: return nil
        case .country?: return JurisdictionTable.unlisted
        case .subdivision?: return unlistedSubdivisions[String(code.utf8.prefix(2))!] ?? JurisdictionTable.unlisted
        }
    }

    /// The class of an upper-case code given as bytes; nil for anything that needs the general
    /// path (lower case, or not an ISO 3166 code at all).
    @inline(__always)
    func classOf(bytes code: UnsafeRawBufferPointer) -> Int32? {
        if let listed = classes.lookup(code) { return listed }
        let count = code.count
        guard count == 2 || (count >= 4 && count <= 6) else { return nil }
        for index in 0..<count {
            let byte = code[index]
            let upper = byte >= 65 && byte <= 90
            let ok = index < 2 ? upper : index == 2 ? byte == UInt8(ascii: "-") : (upper || (byte >= 48 && byte <= 57))
            guard ok else { return nil }
        }
        if count == 2 { return JurisdictionTable.unlisted }
        return unlistedSubdivisionTable.lookup(UnsafeRawBufferPointer(rebasing: code[0..<2])) ?? JurisdictionTable.unlisted
    }

    @inline(__always)
    func accepts(class jurisdictionClass: Int32, rule: Int) -> Bool {
        bits[Int(jurisdictionClass) * words + rule >> 6] >> UInt64(rule & 63) & 1 == 1
    }
}
