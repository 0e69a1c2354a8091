import ConsentModel
import Foundation
import PolicyEngine
import Testing

/// Random policy sets, consent histories and requests from a seeded generator, checked against
/// a straightforward string-based reference implementation of SPEC §3–4 and against the
/// semantic invariants the issue names.
@Suite struct PropertyTests {
    static let purposes = ["a", "a.b", "a.b.c", "a.d", "e", "e.f"]
    static let data = ["x", "x.y", "x.y.z", "x.w", "v"]
    static let ruleJurisdictions = ["G", "DE", "US-*", "US", "FR", "US-CA"]
    static let requestJurisdictions: [String?] = [nil, "DE", "FR", "US-CA", "US-TX", "US", "JP", "DE-BY"]
    static let taxonomy = """
    apiVersion: consentd/v1
    kind: Taxonomy
    purposes: {a: {}, a.b: {}, a.b.c: {}, a.d: {}, e: {}, e.f: {}}
    data_categories: {x: {}, x.y: {}, x.y.z: {}, x.w: {}, v: {}}
    jurisdictions:
      G: [DE, FR]
    """
    static let day: Int64 = 86_400_000_000

    // MARK: generation

    struct Rule {
        var id: String
        var allow: Bool
        var purposes: [String]?
        var data: [String]?
        var jurisdictions: [String]?
        var requirement: String?  // opt_in, opt_out, contract
        var maxAgeDays: Int?
        var minNotice: Int?
        var unlessConsent = false
        var unlessGPC = false

        var yaml: String {
            var lines = ["  - id: \(id)", "    effect: \(allow ? "allow" : "deny")"]
            if let purposes { lines.append("    purposes: [\(purposes.joined(separator: ", "))]") }
            if let data { lines.append("    data: [\(data.joined(separator: ", "))]") }
            if let jurisdictions { lines.append("    jurisdictions: [\(jurisdictions.map { "\"\($0)\"" }.joined(separator: ", "))]") }
            if let requirement { lines.append(requirement == "contract" ? "    basis: contract" : "    consent: \(requirement)") }
            if let maxAgeDays { lines.append("    max_age: \(maxAgeDays)d") }
            if let minNotice { lines.append("    min_notice_version: \(minNotice)") }
            if unlessConsent || unlessGPC {
                var parts: [String] = []
                if unlessConsent { parts.append("consent: opt_in") }
                if unlessGPC { parts.append("gpc: true") }
                lines.append("    unless: {\(parts.joined(separator: ", "))}")
            }
            return lines.joined(separator: "\n")
        }
    }

    static func pick<T>(_ values: [T], _ rng: inout SeededGenerator) -> T { values[Int.random(in: 0..<values.count, using: &rng)] }

    static func some<T>(_ values: [T], _ rng: inout SeededGenerator) -> [T] {
        (0..<Int.random(in: 1...2, using: &rng)).map { _ in pick(values, &rng) }
    }

    static func randomRule(_ index: Int, forceDeny: Bool = false, _ rng: inout SeededGenerator) -> Rule {
        let allow = !forceDeny && Double.random(in: 0..<1, using: &rng) < 0.7
        var rule = Rule(id: "r\(index)", allow: allow)
        if Double.random(in: 0..<1, using: &rng) < 0.9 { rule.purposes = some(purposes, &rng) }
        if Double.random(in: 0..<1, using: &rng) < 0.6 { rule.data = some(data, &rng) }
        if Double.random(in: 0..<1, using: &rng) < 0.6 { rule.jurisdictions = some(ruleJurisdictions, &rng) }
        if allow {
            rule.requirement = pick(["opt_in", "opt_in", "opt_out", "contract"], &rng)
            if rule.requirement == "opt_in" {
                if Bool.random(using: &rng) { rule.maxAgeDays = pick([5, 20, 60], &rng) }
                if Bool.random(using: &rng) { rule.minNotice = pick([1, 2, 3], &rng) }
            }
            rule.unlessGPC = Double.random(in: 0..<1, using: &rng) < 0.25
        } else {
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: rule.unlessConsent = true
            case 1: rule.unlessGPC = true
            case 2: rule.unlessConsent = true; rule.unlessGPC = true
            default: break
            }
        }
        return rule
    }

    static func randomRecords(subject: String, _ rng: inout SeededGenerator) -> [ConsentRecord] {
        (0..<Int.random(in: 0...5, using: &rng)).map { index in
            let at = Int64.random(in: 0...100, using: &rng)
            var record = ConsentRecord(
                sequence: UInt64(index + 1), subject: subject, purpose: pick(purposes, &rng),
                dataCategory: Bool.random(using: &rng) ? pick(data, &rng) : nil,
                choice: Bool.random(using: &rng) ? .grant : .deny, recordedAt: Timestamp(microseconds: at * day)
            )
            if Double.random(in: 0..<1, using: &rng) < 0.3 { record.expiresAt = Timestamp(microseconds: (at + Int64.random(in: 1...60, using: &rng)) * day) }
            if Double.random(in: 0..<1, using: &rng) < 0.8 { record.noticeVersion = UInt32.random(in: 1...3, using: &rng) }
            return record
        }
    }

    static func randomRequest(_ rng: inout SeededGenerator) -> DecisionRequest {
        DecisionRequest(
            subject: "s", purpose: pick(purposes, &rng), dataCategory: pick(data, &rng),
            context: RequestContext(jurisdiction: pick(requestJurisdictions, &rng), gpc: Double.random(in: 0..<1, using: &rng) < 0.3,
                                    at: Timestamp(microseconds: Int64.random(in: 40...120, using: &rng) * day))
        )
    }

    static func compile(_ rules: [Rule], vocabulary: Vocabulary) throws -> PolicySet {
        let policy = "apiVersion: consentd/v1\nkind: Policy\nrules:\n" + rules.map(\.yaml).joined(separator: "\n") + "\n"
        let result = PolicyCompiler.compile([PolicySource(path: "t.yaml", text: taxonomy), PolicySource(path: "p.yaml", text: policy)], vocabulary: vocabulary)
        guard let set = result.policySet else {
            throw TestFailure(message: "generated set did not compile: \(result.diagnostics)\n\(policy)")
        }
        return set
    }

    struct TestFailure: Error { let message: String }

    // MARK: the reference implementation, straight from the spec, on strings

    static func covers(_ a: String, _ b: String) -> Bool { b == a || b.hasPrefix(a + ".") }

    static func jurisdictionMatches(_ element: String, _ code: String) -> Bool {
        if element == "G" { return ["DE", "FR"].contains { jurisdictionMatches($0, code) } }
        if element.hasSuffix("-*") { return code.hasPrefix(String(element.dropLast())) }
        if element.count == 2 { return code == element || code.hasPrefix(element + "-") }
        return code == element
    }

    struct Outcome: Equatable, CustomStringConvertible {
        var effect: Effect
        var reason: ReasonCode
        var rule: String?
        var recordSequence: UInt64?
        var description: String { "\(effect) \(reason) \(rule ?? "-") #\(recordSequence.map(String.init) ?? "-")" }
    }

    static func reference(_ rules: [Rule], _ records: [ConsentRecord], _ request: DecisionRequest) -> Outcome {
        let at = request.context.at!
        let covering = records.filter { r in
            covers(r.purpose, request.purpose) && (r.dataCategory == nil || covers(r.dataCategory!, request.dataCategory))
        }
        let valid = covering.filter { $0.recordedAt <= at && (($0.expiresAt.map { at < $0 }) ?? true) }
        let effective = valid.max { a, b in
            if a.recordedAt != b.recordedAt { return a.recordedAt < b.recordedAt }
            if a.choice != b.choice { return a.choice == .grant }
            return a.sequence < b.sequence
        }
        let expiredGrant = covering.contains { $0.recordedAt <= at && $0.expiresAt.map { $0 <= at } == true && $0.choice == .grant }
        func depth(_ key: String) -> Int { key.split(separator: ".").count }
        typealias Match = (rule: Rule, order: Int, p: Int, d: Int)
        var prohibitions: [Match] = [], held: [(Match, ReasonCode)] = [], unmet: [(Match, ReasonCode)] = []
        for (order, rule) in rules.enumerated() {
            let p = rule.purposes.map { keys in keys.filter { covers($0, request.purpose) }.map(depth).max() ?? -1 } ?? 0
            let d = rule.data.map { keys in keys.filter { covers($0, request.dataCategory) }.map(depth).max() ?? -1 } ?? 0
            guard p >= 0, d >= 0 else { continue }
            if let elements = rule.jurisdictions {
                guard let code = request.context.jurisdiction, elements.contains(where: { jurisdictionMatches($0, code) }) else { continue }
            }
            let match = (rule, order, p, d)
            let signals = rule.unlessGPC ? request.context.gpc : true
            if !rule.allow {
                let lifted = (rule.unlessConsent || rule.unlessGPC) && signals && (!rule.unlessConsent || effective?.choice == .grant)
                if !lifted { prohibitions.append(match) }
                continue
            }
            let reason: ReasonCode
            if rule.unlessGPC && request.context.gpc {
                reason = .optedOutBySignal
            } else if rule.requirement == "contract" {
                reason = .legalBasis
            } else if rule.requirement == "opt_out" {
                reason = effective?.choice == .deny ? .consentDenied : .notOptedOut
            } else if let effective {
                if effective.choice == .deny { reason = .consentDenied }
                else if let days = rule.maxAgeDays, at.microseconds - effective.recordedAt.microseconds > Int64(days) * day { reason = .consentStale }
                else if let minimum = rule.minNotice, (effective.noticeVersion ?? 0) < minimum { reason = .consentStale }
                else { reason = .consentGranted }
            } else {
                reason = expiredGrant ? .consentExpired : .noConsent
            }
            if reason.isAllow { held.append((match, reason)) } else { unmet.append((match, reason)) }
        }
        func mostSpecific(_ a: Match, _ b: Match) -> Bool {  // a before b?
            if a.p != b.p { return a.p > b.p }
            if a.d != b.d { return a.d > b.d }
            return a.order < b.order
        }
        if let best = prohibitions.sorted(by: mostSpecific).first {
            return Outcome(effect: .deny, reason: .prohibited, rule: best.rule.id)
        }
        if let (best, reason) = held.sorted(by: { mostSpecific($0.0, $1.0) }).first {
            return Outcome(effect: .allow, reason: reason, rule: best.rule.id, recordSequence: reason == .legalBasis ? nil : effective?.sequence)
        }
        if let (best, reason) = unmet.sorted(by: { mostSpecific($0.0, $1.0) }).first {
            let keeps = reason == .consentDenied || reason == .consentStale
            return Outcome(effect: .deny, reason: reason, rule: best.rule.id, recordSequence: keeps ? effective?.sequence : nil)
        }
        return Outcome(effect: .deny, reason: .noMatchingRule)
    }

    static func outcome(_ set: PolicySet, _ decision: Decision) -> Outcome {
        Outcome(effect: decision.effect, reason: decision.reason,
                rule: decision.ruleIndex >= 0 ? set.rules[Int(decision.ruleIndex)].id : nil,
                recordSequence: decision.record?.sequence)
    }

    // MARK: properties

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func theIndexedEvaluatorAgreesWithTheReference(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        var compared = 0
        for _ in 0..<60 {
            let rules = (0..<Int.random(in: 1...8, using: &rng)).map { Self.randomRule($0, &rng) }
            let vocabulary = Vocabulary()
            let set = try Self.compile(rules, vocabulary: vocabulary)
            for _ in 0..<25 {
                let records = Self.randomRecords(subject: "s", &rng)
                let compact = records.map { $0.compact(in: vocabulary) }
                let request = Self.randomRequest(&rng)
                let expected = Self.reference(rules, records, request)
                let actual = Self.outcome(set, set.decide(request, consent: compact[...], now: .distantPast))
                #expect(actual == expected, "request \(request) records \(records) rules:\n\(rules.map(\.yaml).joined(separator: "\n"))")
                if actual != expected { return }
                compared += 1
            }
        }
        #expect(compared == 1500)
    }

    @Test func aLaterDenyAlwaysBeatsAnEarlierGrantOfTheSameOrBroaderScope() throws {
        var rng = SeededGenerator(seed: 11)
        for _ in 0..<60 {
            let rules = (0..<Int.random(in: 1...8, using: &rng)).map { Self.randomRule($0, &rng) }
            let vocabulary = Vocabulary()
            let set = try Self.compile(rules, vocabulary: vocabulary)
            for _ in 0..<25 {
                var records = Self.randomRecords(subject: "s", &rng)
                let request = Self.randomRequest(&rng)
                let at = request.context.at!
                let latest = records.map(\.recordedAt.microseconds).filter { $0 <= at.microseconds }.max() ?? (at.microseconds - Self.day)
                let purposeScope = Self.purposes.filter { Self.covers($0, request.purpose) }
                let dataScope = Self.data.filter { Self.covers($0, request.dataCategory) }
                let withdrawal = ConsentRecord(
                    sequence: 99, subject: "s", purpose: Self.pick(purposeScope, &rng),
                    dataCategory: Bool.random(using: &rng) ? nil : Self.pick(dataScope, &rng), choice: .deny,
                    recordedAt: Timestamp(microseconds: min(latest + Int64.random(in: 0...Self.day, using: &rng), at.microseconds))
                )
                records.append(withdrawal)
                let decision = set.decide(request, consent: records.map { $0.compact(in: vocabulary) }[...], now: .distantPast)
                #expect(decision.reason != .consentGranted && decision.reason != .notOptedOut,
                        "allowed by consent despite a later withdrawal: \(decision) for \(request)")
            }
        }
    }

    @Test func unknownKeysNeverAllow() throws {
        var rng = SeededGenerator(seed: 21)
        for _ in 0..<40 {
            var rules = (0..<Int.random(in: 1...8, using: &rng)).map { Self.randomRule($0, &rng) }
            rules.append(Rule(id: "everything", allow: true, requirement: "contract"))
            let vocabulary = Vocabulary()
            let set = try Self.compile(rules, vocabulary: vocabulary)
            for index in 0..<25 {
                var request = Self.randomRequest(&rng)
                let unknownPurpose = Bool.random(using: &rng)
                if unknownPurpose {
                    request.purpose = Self.pick(["zz", "a.zz", "a.b.c.d", "A", "a.", "", "e.f "], &rng) + (index % 2 == 0 ? "" : ".q")
                } else {
                    request.dataCategory = Self.pick(["zz", "x.zz", "x.y.z.q", "X", "x.", ""], &rng)
                }
                // Records for the unknown key exist and grant: still no allow.
                let records = [ConsentRecord(subject: "s", purpose: request.purpose, dataCategory: request.dataCategory, choice: .grant, recordedAt: Timestamp(microseconds: 0))]
                let decision = set.decide(request, consent: records.map { $0.compact(in: vocabulary) }[...], now: .distantPast)
                #expect(decision.effect == .deny)
                #expect(decision.reason == (unknownPurpose ? .unknownPurpose : .unknownDataCategory), "\(request)")
            }
        }
    }

    /// Every INVALID_REQUEST answer says why, and nothing else claims to be invalid: the message's
    /// checks and the decision's agree on generated requests with hostile fields.
    @Test func anInvalidRequestIsExplainedExactlyWhenItIsDenied() throws {
        var rng = SeededGenerator(seed: 33)
        let vocabulary = Vocabulary()
        let set = try Self.compile([Rule(id: "everything", allow: true, requirement: "contract")], vocabulary: vocabulary)
        let subjects = ["s", "", "a\u{0}b", "\u{85}", String(repeating: "x", count: 256), String(repeating: "x", count: 257), "jos\u{E9}", "e\u{301}", "\u{7F}"]
        let jurisdictions: [String?] = [nil, "DE", "de", "US-CA", "u\u{17F}", "", "XX-", "D", "DEU", "US\u{0}", String(repeating: "A", count: 40),
                                     "a" + String(repeating: "\u{301}", count: 500_000), "\u{202E}ED", "D\u{85}", "\"D\\E"]
        let channels: [String?] = [nil, "web", "", "a\u{9}b", String(repeating: "c", count: 64), String(repeating: "c", count: 65)]
        var seen = (invalid: 0, valid: 0)
        for _ in 0..<2_000 {
            var request = Self.randomRequest(&rng)
            request.subject = Self.pick(subjects, &rng)
            if Bool.random(using: &rng) { request.purpose = Self.pick(["zz", "a"], &rng) }
            request.context.jurisdiction = Self.pick(jurisdictions, &rng)
            request.context.channel = Self.pick(channels, &rng)
            request.context.gppSectionIds = Array(repeating: 7, count: Self.pick([0, 1, 64, 65], &rng))
            request.context.tcfVendorId = Self.pick([nil, 1, 65_535, 65_536] as [UInt32?], &rng)
            let decision = set.decide(request, consent: [][...], now: .distantPast)
            let problem = set.invalidRequestProblem(request)
            #expect((decision.reason == .invalidRequest) == (problem != nil), "\(decision.reason) but \(problem ?? "no problem") for \(request)")
            if let problem {
                // A message never grows with its input nor carries a control character, a
                // bidirectional override or any other non-ASCII scalar of the input to a log.
                #expect(problem.utf8.count < 300, "\(problem.utf8.count) bytes")
                #expect(problem.unicodeScalars.allSatisfy { (0x20...0x7E).contains($0.value) || $0 == "…" }, "\(problem.debugDescription)")
            }
            if problem != nil { seen.invalid += 1 } else { seen.valid += 1 }
        }
        #expect(seen.invalid > 100 && seen.valid > 100)
    }

    @Test func addingAProhibitionNeverTurnsADenyIntoAnAllow() throws {
        var rng = SeededGenerator(seed: 31)
        for _ in 0..<60 {
            let rules = (0..<Int.random(in: 1...8, using: &rng)).map { Self.randomRule($0, &rng) }
            let extra = Self.randomRule(rules.count, forceDeny: true, &rng)
            let vocabulary = Vocabulary()
            let before = try Self.compile(rules, vocabulary: vocabulary)
            let after = try Self.compile(rules + [extra], vocabulary: vocabulary)
            for _ in 0..<25 {
                let compact = Self.randomRecords(subject: "s", &rng).map { $0.compact(in: vocabulary) }
                let request = Self.randomRequest(&rng)
                let old = before.decide(request, consent: compact[...], now: .distantPast)
                let new = after.decide(request, consent: compact[...], now: .distantPast)
                if old.effect == .deny {
                    #expect(new.effect == .deny, "prohibition \(extra.yaml) turned \(old) into \(new)")
                }
            }
        }
    }

    /// With the daemon's consent index stale, an answer never depends on the records (any two
    /// histories give the same decision), no allow rests on consent, and every answer other than
    /// CONSENT_UNAVAILABLE is the one the records would have given (allow by a legal basis, deny
    /// by a prohibition: settled whatever the records say; the rule named may be another that
    /// settles it).
    @Test func aStaleIndexDecidesNothingFromRecords() throws {
        var rng = SeededGenerator(seed: 51)
        let consentReasons: Set<ReasonCode> = [.consentGranted, .notOptedOut, .noConsent, .consentDenied, .consentExpired, .consentStale]
        var seen: [ReasonCode: Int] = [:]
        var consentFreeCases = 0
        for _ in 0..<200 {
            let rules = (0..<Int.random(in: 1...8, using: &rng)).map { Self.randomRule($0, &rng) }
            let vocabulary = Vocabulary()
            let set = try Self.compile(rules, vocabulary: vocabulary)
            let consentFree = rules.allSatisfy { $0.allow ? $0.requirement == "contract" : !$0.unlessConsent }
            for _ in 0..<25 {
                let request = Self.randomRequest(&rng)
                let one = Self.randomRecords(subject: "s", &rng).map { $0.compact(in: vocabulary) }
                let other = Self.randomRecords(subject: "s", &rng).map { $0.compact(in: vocabulary) }
                let available = set.decide(request, consent: one[...], now: .distantPast)
                let stale = set.decide(request, consent: one[...], now: .distantPast, consentAvailable: false)
                #expect(stale == set.decide(request, consent: other[...], now: .distantPast, consentAvailable: false), "a stale answer depended on the records")
                #expect(stale == set.decide(request, consent: [][...], now: .distantPast, consentAvailable: false))
                if stale.effect == .allow {
                    #expect(!consentReasons.contains(stale.reason) && stale.record == nil, "a stale index allowed on consent: \(stale)")
                }
                if stale.reason == .consentUnavailable {
                    #expect(stale.effect == .deny)
                } else {
                    #expect(stale.effect == available.effect && !consentReasons.contains(stale.reason),
                            "a stale answer that claims not to need consent differs from the records' answer: \(available) became \(stale)")
                }
                if available.effect == .deny {
                    #expect(stale.effect == .deny, "\(available) became \(stale)")
                }
                if consentFree {
                    // A set no rule of which looks at consent answers exactly as before.
                    #expect(stale == available, "\(available) became \(stale)")
                    consentFreeCases += 1
                }
                // The explanation agrees with the decision.
                #expect(set.explain(request, consent: one[...], now: .distantPast, consentAvailable: false).decision == stale)
                seen[stale.reason, default: 0] += 1
            }
        }
        #expect(seen[.consentUnavailable, default: 0] > 100 && seen[.legalBasis, default: 0] > 20 && consentFreeCases > 20, "\(seen), \(consentFreeCases) consent-free")
    }

    @Test func expiredRecordsNeverCount() throws {
        var rng = SeededGenerator(seed: 41)
        for _ in 0..<60 {
            let rules = (0..<Int.random(in: 1...8, using: &rng)).map { Self.randomRule($0, &rng) }
            let vocabulary = Vocabulary()
            let set = try Self.compile(rules, vocabulary: vocabulary)
            for _ in 0..<25 {
                let records = Self.randomRecords(subject: "s", &rng)
                let request = Self.randomRequest(&rng)
                let at = request.context.at!.microseconds
                var expired = Self.randomRecords(subject: "s", &rng)
                for index in expired.indices {
                    expired[index].sequence = 1000 + UInt64(index)
                    let recorded = Int64.random(in: (at - 50 * Self.day)...at, using: &rng)
                    expired[index].recordedAt = Timestamp(microseconds: recorded)
                    expired[index].expiresAt = Timestamp(microseconds: Int64.random(in: recorded...at, using: &rng))
                }
                let base = set.decide(request, consent: records.map { $0.compact(in: vocabulary) }[...], now: .distantPast)
                let withExpired = set.decide(request, consent: (records + expired).map { $0.compact(in: vocabulary) }[...], now: .distantPast)
                #expect(withExpired.effect == base.effect)
                #expect(withExpired.ruleIndex == base.ruleIndex)
                if withExpired.reason != base.reason {
                    #expect(base.reason == .noConsent && withExpired.reason == .consentExpired, "\(base) became \(withExpired)")
                }
                #expect((withExpired.record?.sequence ?? 0) < 1000, "relied on an expired record")
            }
        }
    }
}
