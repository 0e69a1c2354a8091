@testable import ConsentSignals
import Foundation
import Testing

/// The reference libraries' own test vectors (iabtcf-java, iabtcf-es, iabgpp-java, iabgpp-es,
/// prebid/go-gdpr, prebid/go-gpp, prebid-server), with the values those suites assert; sources and
/// conventions in Vectors/README.md. Where the libraries disagree with each other or with the
/// specification, consentd's choice is listed in `Disagreement` with the reason, and the test
/// asserts that choice instead.
struct SignalVectorTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors")

    static func vectors(_ file: String) -> [[String: Any]] {
        let data = try! Data(contentsOf: directory.appendingPathComponent(file))
        return try! JSONDecoder().decode(JSONValue.self, from: data).plain as! [[String: Any]]
    }

    /// JSON read strictly, so that `true` is a Bool and `1` an Int (JSONSerialization's NSNumbers
    /// cast to either).
    enum JSONValue: Decodable {
        case bool(Bool), int(Int), string(String), array([JSONValue]), object([String: JSONValue]), null

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() { self = .null }
            else if let value = try? container.decode(Bool.self) { self = .bool(value) }
            else if let value = try? container.decode(Int.self) { self = .int(value) }
            else if let value = try? container.decode(String.self) { self = .string(value) }
            else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
            else { self = .object(try container.decode([String: JSONValue].self)) }
        }

        var plain: Any {
            switch self {
            case .bool(let value): value
            case .int(let value): value
            case .string(let value): value
            case .array(let values): values.map(\.plain)
            case .object(let fields): fields.mapValues(\.plain)
            case .null: Optional<Int>.none as Any
            }
        }
    }

    /// Vectors where consentd deliberately answers differently from the suite that wrote them.
    enum Disagreement {
        /// TCF v1 strings (first character `B`, version 1): consentd reads TCF v2 only (v2.0–v2.3
        /// all encode version 2), so they fail with the version, whatever the suite expected.
        static func tcfVersionOne(_ string: String) -> Bool { string.hasPrefix("B") }
        /// A segment of type 0 (a second core segment) after the core: iabtcf-java ignores it;
        /// consentd refuses a segment type that is repeated or not an optional segment.
        static let segmentTypeZero: Set<String> = ["COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA.AA=="]
        /// US Privacy version 2 (iabgpp's encoder accepts it): the US Privacy specification
        /// defines version 1 only, and prebid-server refuses 2; an unknown version fails closed.
        static let uspVersionTwo: Set<String> = ["2YNY", "2NYY"]
    }

    @Test func theVectorsAreTheOnesCollected() {
        let counts = ["tcf.json", "gpp.json", "usp.json"].map { Self.vectors($0).count }
        #expect(counts == [61, 84, 24])
        let malformed = ["tcf.json", "gpp.json", "usp.json"].flatMap(Self.vectors).filter { $0["malformed"] as? Bool == true }.count
        #expect(malformed == 49)
    }

    @Test func tcfVectors() {
        var checked = 0
        for vector in Self.vectors("tcf.json") {
            let string = vector["string"] as! String
            let expect = vector["expect"] as! [String: Any]
            let label = "\(string) (\((vector["source"] as! [String: Any])["test"] ?? ""))"
            if Disagreement.segmentTypeZero.contains(string) {
                do {
                    _ = try SignalReport.decode(string, as: .tcf)
                    Issue.record("\(label) decoded")
                } catch {
                    #expect(error.problem == .unexpectedSegment(0) && "\(error.field)" == "SegmentType", "\(error)")
                }
                checked += 1
                continue
            }
            if Disagreement.tcfVersionOne(string) {
                #expect(throws: SignalError.self) { try SignalReport.decode(string, as: .tcf) }
                do { _ = try SignalReport.decode(string, as: .tcf) } catch {
                    #expect(error.problem == .unsupportedVersion(1), "\(label)")
                }
                checked += 1
                continue
            }
            if let message = expect["error"] as? String {
                do {
                    let report = try SignalReport.decode(string, as: .tcf)
                    Issue.record("\(label) decoded, the suite expects \(message): \(report)")
                } catch {
                    if let problem = Self.expectedTCFProblem(message) {
                        #expect(problem(error.problem), "\(label): \(error) for \(message)")
                    }
                    #expect(error.description.contains("field") && error.description.contains("at bit"), "\(error)")
                }
                checked += 1
                continue
            }
            let report: SignalValue
            do { report = try SignalReport.decode(string, as: .tcf) } catch {
                Issue.record("\(label) failed: \(error)")
                continue
            }
            for (key, value) in expect {
                if let mismatch = Self.check(key: key, expected: value, in: report, string: string) {
                    Issue.record("\(label): \(mismatch)")
                }
            }
            checked += 1
        }
        #expect(checked == 61)
    }

    /// What consentd's error must be for a suite's error text (the suites word them differently).
    static func expectedTCFProblem(_ message: String) -> ((SignalError.Problem) -> Bool)? {
        if message.contains("excludes vendor 0") {
            return { $0 == .zeroIdentifier }
        }
        if message.contains("but only vendors") {
            return { if case .vendorBeyondMaximum = $0 { true } else { false } }
        }
        if message.contains("start should be less than the end") {
            return { if case .rangeStartAfterEnd = $0 { true } else { false } }
        }
        if message.contains("Version of 1") || message.contains("UnsupportedVersion") {
            return { if case .unsupportedVersion = $0 { true } else { false } }
        }
        if message.contains("VendorListVersion of 0") {
            // go-gdpr refuses VendorListVersion 0 first; the IAB's own libraries (iabgpp, whose
            // vectors carry 0) accept it, and so does consentd. This string also ends before
            // NumPubRestrictions, which is the error consentd reports.
            return { $0 == .truncated(needed: 12, available: 5) }
        }
        if message.contains("base64") || message.contains("Base64") {
            return { if case .invalidCharacter = $0 { true } else { false } }
        }
        if message.contains("ParseUInt16") || message.contains("bytes long") || message.contains("requires") || message.contains("ByteParse") {
            return { if case .truncated = $0 { true } else { false } }
        }
        return nil
    }

    @Test func uspVectors() {
        for vector in Self.vectors("usp.json") {
            let string = vector["string"] as! String
            let expect = vector["expect"] as! [String: Any]
            if string.isEmpty {
                // prebid-server: an empty string is no signal (valid, no opt-out). On the wire an
                // empty us_privacy is an absent one; as a string to decode it is an error.
                #expect(throws: SignalError.self) { try USPrivacyString(string) }
                continue
            }
            if Disagreement.uspVersionTwo.contains(string) {
                do {
                    _ = try USPrivacyString(string)
                    Issue.record("\(string) decoded")
                } catch {
                    #expect(error.problem == .unsupportedVersion(2))
                }
                continue
            }
            let parsed = try? USPrivacyString(string)
            if expect["error"] != nil || expect["valid"] as? Bool == false {
                #expect(parsed == nil, "\(string) must be refused")
                continue
            }
            guard let parsed else {
                Issue.record("\(string) refused")
                continue
            }
            if let effective = expect["opt_out_sale_effective"] as? Bool { #expect(parsed.optedOutOfSale == effective, "\(string)") }
            let report = SignalValue.object(SignalReport.usp(parsed))
            for key in ["version", "notice", "opt_out_sale", "lspa"] {
                guard let value = expect[key] else { continue }
                if let mismatch = Self.check(key: key, expected: value, in: report, string: string) { Issue.record("\(string): \(mismatch)") }
            }
        }
    }

    @Test func uspErrorsNameTheField() throws {
        let cases: [(String, StaticString)] = [("1X--", "ExplicitNotice"), ("1-y-", "OptOutSale"), ("1--X", "LSPACovered"), ("xNNN", "Version")]
        for (string, field) in cases {
            do {
                _ = try USPrivacyString(string)
                Issue.record("\(string) accepted")
            } catch {
                #expect("\(error.field)" == "\(field)")
            }
        }
        #expect(throws: SignalError.self) { try USPrivacyString("1NY") }
        #expect(throws: SignalError.self) { try USPrivacyString("1NYNN") }
        #expect(throws: SignalError.self) { try USPrivacyString("1NY\u{0}") }
    }

    /// go-gpp's own test strings carry arbitrary section versions (3, 27, 49), which its decoder
    /// never checks. consentd refuses a version whose layout it does not know (fail closed) and
    /// checks the fields of those strings by reading them with the known layout.
    static func arbitraryVersion(_ error: SignalError) -> Bool {
        if case .unsupportedVersion = error.problem, "\(error.field)" == "Version", error.gppSection != nil { return true }
        return false
    }

    @Test func gppVectors() {
        var checked = 0
        for vector in Self.vectors("gpp.json") {
            let string = vector["string"] as! String
            let expect = vector["expect"] as! [String: Any]
            let level = vector["level"] as! String
            let label = "\(level) \(string.prefix(60))"
            let expectedError = expect["error"] as? String
            if level == "section" {
                let name = vector["section"] as! String
                let id = (1...23).first { GPPSectionId.name($0) == name }!
                do {
                    let report: SignalValue
                    do {
                        report = try SignalReport.decodeSection(string, id: id)
                    } catch where Self.arbitraryVersion(error) {
                        report = try SignalReport.decodeSection(string, id: id, acceptingAnyVersion: true)
                    }
                    if let expectedError {
                        Issue.record("\(label) decoded, the suite expects \(expectedError)")
                    } else if let sections = expect["sections"] as? [String: Any], let fields = sections[name] {
                        if let mismatch = Self.checkSection(name, expected: fields, actual: report) { Issue.record("\(label): \(mismatch)") }
                    }
                } catch {
                    if expectedError == nil { Issue.record("\(label) failed: \(error)") }
                }
                checked += 1
                continue
            }
            do {
                let report = level == "header" ? try SignalReport.decodeGPPHeader(string) : try SignalReport.decode(string, as: .gpp)
                if let expectedError {
                    Issue.record("\(label) decoded, the suite expects \(expectedError)")
                    continue
                }
                for (key, value) in expect {
                    switch key {
                    case "sections":
                        for (name, fields) in value as! [String: Any] {
                            if let mismatch = Self.checkSection(name, expected: fields, actual: report["sections"]?[name]) {
                                Issue.record("\(label): \(mismatch)")
                            }
                        }
                    case "has_sections":
                        guard case .object(let sections) = report["sections"] else { Issue.record("no sections"); continue }
                        #expect(sections.map(\.key) == value as! [String], "\(label)")
                    case "decodes", "reencodes_identically", "section_ids__note":
                        break
                    default:
                        if let mismatch = Self.check(key: key, expected: value, in: report, string: string) { Issue.record("\(label): \(mismatch)") }
                    }
                }
            } catch let failure {
                if expectedError != nil {
                    #expect(failure.description.contains("at bit"))
                } else if Self.arbitraryVersion(failure) {
                    let sections = expect["sections"] as? [String: Any] ?? [:]
                    // Read each section leniently to check the suite's field values.
                    let parts = string.split(separator: "~", omittingEmptySubsequences: false).dropFirst()
                    let listed = (try? SignalReport.decodeGPPHeader(String(string.split(separator: "~")[0])))?["section_ids"]
                    for (name, fields) in sections {
                        let id = (1...23).first { GPPSectionId.name($0) == name }!
                        if fields is Optional<Int> {
                            #expect(listed.map { !Self.idsContain($0, id) } == true, "\(label): \(name) listed")
                            continue
                        }
                        let text = parts.first { part in
                            (try? SignalReport.decodeSection(String(part), id: id, acceptingAnyVersion: true)) != nil
                                && Self.checkSection(name, expected: fields, actual: try? SignalReport.decodeSection(String(part), id: id, acceptingAnyVersion: true)) == nil
                        }
                        #expect(text != nil, "\(label): no section text matches \(name)")
                    }
                } else {
                    Issue.record("\(label) failed: \(failure)")
                }
            }
            checked += 1
        }
        #expect(checked == 84)
    }

    static func idsContain(_ value: SignalValue, _ id: Int) -> Bool {
        if case .ints(let ids) = value { return ids.contains(id) }
        return false
    }

    static func checkSection(_ name: String, expected: Any, actual: SignalValue?) -> String? {
        if expected is Optional<Int> { return actual == nil ? nil : "section \(name) present, the suite expects none" }
        guard let actual else { return "section \(name) missing" }
        guard let fields = expected as? [String: Any] else { return nil }  // present, nothing asserted
        if actual["decoded"] == .bool(false) {
            // A section consentd reports undecoded: its text is what the suite kept.
            if let raw = fields["raw"] as? String, actual["text"] != .string(raw) { return "\(name) text differs" }
            return nil
        }
        for (key, value) in fields {
            switch key {
            case "raw":
                break  // go-gpp keeps the section opaque; consentd decodes it (checked by the parse)
            case "all_other_fields":
                guard case .object(let all) = actual else { return "\(name) not an object" }
                for field in all where fields[field.key] == nil {
                    switch field.value {
                    case .int(let v) where v != value as! Int: return "\(name).\(field.key) = \(v)"
                    case .ints(let vs) where vs.contains(where: { $0 != value as! Int }): return "\(name).\(field.key) = \(vs)"
                    default: break
                    }
                }
            case "gpc_subsection_type":
                // go-gpp reports {SubsectionType: 1, Gpc: false} for an absent subsection; present
                // or absent, a GPC subsection's type is 1 (any other is refused).
                break
            case "gpc" where actual["gpc"] == nil:
                // Absent subsection: GPC not signalled, which both libraries report as false.
                if value as! Bool != false { return "\(name) has no GPC subsection" }
            case "gpc_segment_included":
                if (actual["gpc"] != nil) != (value as! Bool) { return "\(name) GPC subsection presence" }
            case "note", "decodes":
                break
            default:
                if let mismatch = check(key: key, expected: value, in: actual, string: name) { return "\(name): \(mismatch)" }
            }
        }
        return nil
    }

    /// One expectation under the vector conventions: plain keys exact, `__contains`, `__excludes`,
    /// `__count`, `__nonempty`, `__max_id`, `__vendors_for`; `__computed`/`__implied` values are
    /// the collector's own cross-checked derivations and are held to the same standard.
    static func check(key: String, expected: Any, in report: SignalValue, string: String) -> String? {
        let parts = key.components(separatedBy: "__")
        let field = parts[0]
        let modifier = parts.count > 1 ? parts[1] : ""
        if modifier == "note" || field == "decodes" { return nil }
        if field == "vendor_consents", modifier == "max_id" {
            let max = try? TCFString.withParsed(string) { $0.vendorConsents.maxVendorId }
            return max == expected as? Int ? nil : "MaxVendorId \(String(describing: max)) != \(expected)"
        }
        guard let actual = report[field] else { return "\(field) missing" }
        switch modifier {
        case "", "computed", "implied":
            if let inner = expected as? [String: Any], case .object = actual {
                for (innerKey, innerValue) in inner {
                    if let mismatch = check(key: innerKey, expected: innerValue, in: actual, string: string) { return "\(field).\(mismatch)" }
                }
                return nil
            }
            if field == "created" || field == "last_updated", let text = expected as? String, case .string(let decoded) = actual,
               !text.contains(".") {
                // go-gdpr asserts whole seconds; the string encodes deciseconds, which consentd keeps.
                return decoded.prefix(19) == text.prefix(19) ? nil : "\(field): \(decoded) != \(text)"
            }
            return same(expected, actual) ? nil : "\(field): \(actual.inline) != \(expected)"
        case "contains", "excludes":
            let wanted = modifier == "contains"
            for item in expected as! [Any] {
                let present: Bool
                if let id = item as? Int {
                    guard case .ints(let ids) = actual else { return "\(field) not ids" }
                    present = ids.contains(id)
                } else {
                    let entry = item as! [String: Int]
                    guard case .list(let restrictions) = actual else { return "\(field) not a list" }
                    present = restrictions.contains { restriction in
                        restriction["purpose"] == .int(entry["purpose"]!) && restriction["type"] == .int(entry["type"]!)
                            && { if case .ints(let vendors)? = restriction["vendors"] { vendors.contains(entry["vendor"]!) } else { false } }()
                    }
                }
                if present != wanted { return "\(field) \(modifier) \(item): \(actual.inline)" }
            }
            return nil
        case "nonempty":
            if case .ints(let ids) = actual, !ids.isEmpty { return nil }
            return "\(field) is empty"
        case "count":
            if case .ints(let ids) = actual, ids.count == expected as! Int { return nil }
            if case .list(let items) = actual, items.count == expected as! Int { return nil }
            return "\(field) count != \(expected)"
        case "vendors_for":
            let entry = expected as! [String: Any]
            guard case .list(let restrictions) = actual else { return "\(field) not a list" }
            let match = restrictions.first { $0["purpose"] == .int(entry["purpose"] as! Int) && $0["type"] == .int(entry["type"] as! Int) }
            return match.map { same(entry["vendors"]!, $0["vendors"]!) } == true ? nil : "\(field) for \(entry): \(actual.inline)"
        default:
            return "unknown modifier \(modifier)"
        }
    }

    /// JSON value against a report value; a scalar expected where the report has a list of one
    /// (known_child_sensitive_data_consents in usva/usco/usut, a list in consentd's report).
    static func same(_ expected: Any, _ actual: SignalValue) -> Bool {
        switch actual {
        case .int(let value): return !(expected is Bool) && (expected as? Int) == value
        case .bool(let value): return (expected as? Bool) == value
        case .string(let value): return (expected as? String) == value
        case .ints(let values):
            // iabgpp-java presents a 12/2 US-national string in the 16/3 layout, the added
            // positions 0; consentd reports the positions the string encodes.
            if let list = expected as? [Int], list.count > values.count, list.count == 16 || list.count == 3 {
                return Array(list.prefix(values.count)) == values && list.dropFirst(values.count).allSatisfy { $0 == 0 }
            }
            if let list = expected as? [Int] { return list == values }
            if let single = expected as? Int { return values == [single] }
            return false
        case .list(let items):
            guard let list = expected as? [Any], list.count == items.count else { return false }
            return zip(list, items).allSatisfy { same($0, $1) }
        case .object(let fields):
            guard let dictionary = expected as? [String: Any] else { return false }
            return dictionary.allSatisfy { key, value in fields.first { $0.key == key }.map { same(value, $0.value) } ?? false }
        }
    }
}
