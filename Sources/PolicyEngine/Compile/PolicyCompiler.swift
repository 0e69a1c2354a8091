import ConsentModel
import Crypto

/// The outcome of compiling a policy set: the set when there were no errors, and every diagnostic.
public struct CompileResult: Sendable {
    /// The compiled set; nil when any diagnostic is an error.
    public var policySet: PolicySet?
    /// Errors and warnings, sorted for output.
    public var diagnostics: [Diagnostic]
}

/// Compiles policy files into an immutable `PolicySet` through a list of named stages
/// (parse → taxonomy → jurisdictions → rules → checks → index), each adding diagnostics.
public enum PolicyCompiler {
    /// The stages in order, by name.
    public static let stageNames = stages.map(\.name)

    static let stages: [(name: String, run: @Sendable (inout Compilation) -> Void)] = [
        ("parse", Compilation.parse),
        ("declare-taxonomy", Compilation.declareTaxonomy),
        ("resolve-jurisdictions", Compilation.resolveJurisdictionGroups),
        ("resolve-rules", Compilation.resolveRules),
        ("check-rules", Compilation.checkRules),
    ]

    /// Compiles the set made of `sources` (test suites among them are ignored) against `vocabulary`.
    public static func compile(_ sources: [PolicySource], vocabulary: Vocabulary) -> CompileResult {
        var compilation = Compilation(sources: sources.filter { !$0.isTestSuite }.sorted { $0.path < $1.path }, vocabulary: vocabulary)
        for stage in stages { stage.run(&compilation) }
        let diagnostics = compilation.diagnostics.sortedForOutput()
        guard !diagnostics.hasErrors else { return CompileResult(policySet: nil, diagnostics: diagnostics) }
        return CompileResult(policySet: compilation.build(), diagnostics: diagnostics)
    }

    /// The revision of a set of sources: the first 16 hex digits of SHA-256 over every path and text.
    public static func revision(of sources: [PolicySource]) -> String {
        var hasher = SHA256()
        for source in sources.filter({ !$0.isTestSuite }).sorted(by: { $0.path < $1.path }) {
            hasher.update(data: Array(source.path.utf8) + [0])
            hasher.update(data: Array(source.text.utf8) + [0])
        }
        return hasher.finalize().prefix(8).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

/// The working state the stages pass along.
struct Compilation {
    let sources: [PolicySource]
    let vocabulary: Vocabulary
    var diagnostics: [Diagnostic] = []

    var taxonomies: [TaxonomySyntax] = []
    var tcfVendorId: Located<Int>?
    var policies: [(file: String, policy: PolicySyntax)] = []

    var purposeKeys: [String] = []
    var dataKeys: [String] = []
    var purposeAttributes: [String: KeyAttributes] = [:]
    var dataAttributes: [String: KeyAttributes] = [:]
    var purposes: KeyTree?
    var dataCategories: KeyTree?
    var groups: [String: [JurisdictionMatcher]] = [:]
    var groupMembers: [String: [String]] = [:]

    var rules: [ResolvedRule] = []
    var defaultEffect: Effect = .deny

    init(sources: [PolicySource], vocabulary: Vocabulary) {
        self.sources = sources
        self.vocabulary = vocabulary
    }

    mutating func error(_ code: String, _ at: SourceLocation, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(.error, code, at: at, message, hint: hint))
    }

    mutating func warning(_ code: String, _ at: SourceLocation, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(.warning, code, at: at, message, hint: hint))
    }

    // MARK: parse

    static func parse(_ c: inout Compilation) {
        if c.sources.isEmpty {
            c.error("empty-policy-set", SourceLocation(file: ".", line: 1, column: 1), "the policy set has no *.yaml files", hint: "add a Taxonomy file and at least one Policy file")
        }
        for source in c.sources {
            let (document, diagnostics) = PolicyParser.parse(source.text, file: source.path)
            c.diagnostics += diagnostics
            switch document {
            case let .taxonomy(taxonomy)?: c.taxonomies.append(taxonomy)
            case let .policy(policy)?: c.policies.append((source.path, policy))
            case let .test(test)?:
                c.error("misplaced-test", test.location, "a PolicyTest document must live in a file named *_test.yaml", hint: "rename the file to end in _test.yaml")
            case nil: break
            }
        }
        if !c.sources.isEmpty && c.taxonomies.isEmpty && !c.diagnostics.hasErrors {
            c.error("no-taxonomy", SourceLocation(file: c.sources[0].path, line: 1, column: 1), "the policy set declares no Taxonomy", hint: "add a file with `kind: Taxonomy` declaring purposes and data_categories")
        }
    }

    // MARK: declare-taxonomy

    static func isValidKey(_ key: String) -> Bool {
        let segments = key.split(separator: ".", omittingEmptySubsequences: false)
        return !segments.isEmpty && segments.allSatisfy { segment in
            !segment.isEmpty && segment.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45 }
        }
    }

    static func declareTaxonomy(_ c: inout Compilation) {
        var seenPurposes: [String: SourceLocation] = [:]
        var seenData: [String: SourceLocation] = [:]
        var purposeKeys: [String] = [], dataKeys: [String] = []
        var purposeAttributes: [String: KeyAttributes] = [:], dataAttributes: [String: KeyAttributes] = [:]
        for taxonomy in c.taxonomies {
            for node in taxonomy.purposes { c.declare(node, tree: "purpose", seen: &seenPurposes, keys: &purposeKeys, attributes: &purposeAttributes) }
            for node in taxonomy.dataCategories { c.declare(node, tree: "data category", seen: &seenData, keys: &dataKeys, attributes: &dataAttributes) }
        }
        c.purposeKeys = purposeKeys
        c.dataKeys = dataKeys
        c.purposeAttributes = purposeAttributes
        c.dataAttributes = dataAttributes
        for (tree, seen) in [("purpose", seenPurposes), ("data category", seenData)] {
            for (key, location) in seen.sorted(by: { $0.value < $1.value }) {
                guard let dot = key.lastIndex(of: ".") else { continue }
                let parent = String(key[..<dot])
                if seen[parent] == nil {
                    c.error("undeclared-parent", location, "\(tree) '\(key)' has no declared parent '\(parent)'", hint: "declare '\(parent)' in the taxonomy too")
                }
            }
        }
        for taxonomy in c.taxonomies {
            guard let vendor = taxonomy.tcfVendorId else { continue }
            if let first = c.tcfVendorId, first.value != vendor.value {
                c.error("duplicate-key", vendor.location, "tcf_vendor_id is \(vendor.value) here and \(first.value) at \(first.location)", hint: "state the TCF vendor id once")
            } else if c.tcfVendorId == nil {
                c.tcfVendorId = vendor
            }
        }
        if c.tcfVendorId == nil, let mapped = c.taxonomies.lazy.flatMap(\.purposes).first(where: { !$0.tcfPurposes.isEmpty }) {
            c.warning("no-tcf-vendor", mapped.key.location, "purpose '\(mapped.key.value)' maps to TCF purposes but the taxonomy states no tcf_vendor_id: a TC string grants only for a request naming its tcf_vendor_id, and otherwise counts as a refusal", hint: "add `tcf_vendor_id: <your vendor id>` to the taxonomy")
        }
        if !c.taxonomies.isEmpty {
            if c.purposeKeys.isEmpty { c.error("empty-taxonomy", c.taxonomies[0].location, "the taxonomy declares no purposes") }
            if c.dataKeys.isEmpty { c.error("empty-taxonomy", c.taxonomies[0].location, "the taxonomy declares no data categories") }
        }
        c.purposes = KeyTree(keys: c.purposeKeys, vocabulary: c.vocabulary.purposes)
        c.dataCategories = KeyTree(keys: c.dataKeys, vocabulary: c.vocabulary.dataCategories)
    }

    mutating func declare(_ node: TaxonomyNodeSyntax, tree: String, seen: inout [String: SourceLocation], keys: inout [String], attributes: inout [String: KeyAttributes]) {
        let key = node.key.value
        guard Compilation.isValidKey(key) else {
            error("bad-key", node.key.location, "'\(key)' is not a valid \(tree) key", hint: "keys are dot-separated segments of lowercase letters, digits, '_' and '-', e.g. marketing.email")
            return
        }
        if let first = seen[key] {
            error("duplicate-key", node.key.location, "\(tree) '\(key)' is declared twice", hint: "first declared at \(first)")
            return
        }
        seen[key] = node.key.location
        keys.append(key)
        attributes[key] = KeyAttributes(
            description: node.description, sensitive: node.sensitive, saleOrSharing: node.saleOrSharing,
            tcfPurposes: node.tcfPurposes, tcfSpecialFeature: node.tcfSpecialFeature, gppSensitiveData: node.gppSensitiveData,
            labels: node.labels
        )
    }

    // MARK: resolve-jurisdictions

    static func resolveJurisdictionGroups(_ c: inout Compilation) {
        var seen: [String: SourceLocation] = [:]
        for taxonomy in c.taxonomies {
            for group in taxonomy.jurisdictions {
                let name = group.name.value
                if let first = seen[name] {
                    c.error("duplicate-group", group.name.location, "jurisdiction group '\(name)' is declared twice", hint: "first declared at \(first)")
                    continue
                }
                seen[name] = group.name.location
                if JurisdictionMatcher(code: name) != nil {
                    c.warning("group-shadows-code", group.name.location, "jurisdiction group '\(name)' has the form of an ISO 3166 code; rules naming '\(name)' mean the group", hint: "give the group a longer name, e.g. '\(name)-GROUP'")
                }
                var matchers: [JurisdictionMatcher] = []
                for member in group.members {
                    if let matcher = JurisdictionMatcher(code: member.value) {
                        matchers.append(matcher)
                    } else {
                        c.error("bad-jurisdiction", member.location, "'\(member.value)' in group '\(name)' is not an ISO 3166 code or a `CC-*` pattern", hint: "use codes like DE, US-CA or US-*; groups cannot contain groups")
                    }
                }
                c.groups[name] = matchers
                c.groupMembers[name] = group.members.map(\.value)
            }
        }
    }

    // MARK: resolve-rules

    static func resolveRules(_ c: inout Compilation) {
        var seenIDs: [String: SourceLocation] = [:]
        var defaultAt: SourceLocation?
        guard let purposes = c.purposes, let data = c.dataCategories else { return }
        for (file, policy) in c.policies {
            if let stated = policy.defaultEffect {
                if let first = defaultAt {
                    c.error("duplicate-default", stated.location, "a second file states the set's default", hint: "only one file in a policy set may state `default`; the first is at \(first)")
                } else {
                    defaultAt = stated.location
                    c.defaultEffect = stated.value
                }
            }
            if policy.rules.isEmpty {
                c.warning("no-rules", policy.location, "policy '\(policy.name?.value ?? file)' has no rules")
            }
            for syntax in policy.rules {
                if let first = seenIDs[syntax.id.value] {
                    c.error("duplicate-rule-id", syntax.id.location, "rule id '\(syntax.id.value)' is used twice", hint: "rule ids must be unique in the set; the first is at \(first)")
                }
                seenIDs[syntax.id.value] = seenIDs[syntax.id.value] ?? syntax.id.location
                if let rule = c.resolve(syntax, purposes: purposes, data: data) { c.rules.append(rule) }
            }
        }
    }

    mutating func resolveKeys(_ keys: [Located<String>]?, field: String, tree: KeyTree, treeName: String, code: String) -> [UInt32]? {
        guard let keys else { return [] }
        var ids: [UInt32] = []
        var ok = true
        if keys.isEmpty { return nil }
        for key in keys {
            if let id = tree.id(of: key.value) {
                ids.append(id)
            } else {
                let hint = Suggest.didYouMean(key.value, in: tree.keys) ?? "declare it in the taxonomy, or fix the spelling"
                error(code, key.location, "\(treeName) '\(key.value)' is not in the taxonomy", hint: hint)
                ok = false
            }
        }
        return ok ? ids : nil
    }

    mutating func resolve(_ syntax: RuleSyntax, purposes: KeyTree, data: KeyTree) -> ResolvedRule? {
        let id = syntax.id.value
        var ok = true
        for (field, list) in [("purposes", syntax.purposes), ("data", syntax.data), ("jurisdictions", syntax.jurisdictions), ("channels", syntax.channels)] {
            if let list, list.isEmpty {
                error("empty-list", syntax.location, "rule '\(id)' has an empty `\(field)` list, which would match nothing", hint: "remove `\(field)` to match every one, or list at least one")
                ok = false
            }
        }
        let purposeIDs = resolveKeys(syntax.purposes, field: "purposes", tree: purposes, treeName: "purpose", code: "unknown-purpose")
        let dataIDs = resolveKeys(syntax.data, field: "data", tree: data, treeName: "data category", code: "unknown-data-category")
        if purposeIDs == nil || dataIDs == nil { ok = false }

        var matchers: [JurisdictionMatcher]?
        if let elements = syntax.jurisdictions {
            var resolved: [JurisdictionMatcher] = []
            for element in elements {
                if let group = groups[element.value] {
                    resolved += group
                } else if let matcher = JurisdictionMatcher(code: element.value) {
                    resolved.append(matcher)
                } else {
                    let hint = Suggest.didYouMean(element.value, in: groups.keys.sorted()) ?? "use a group declared under the taxonomy's `jurisdictions`, an ISO 3166 code (DE, US-CA) or a pattern (US-*)"
                    error("unknown-jurisdiction", element.location, "'\(element.value)' is neither a jurisdiction group nor an ISO 3166 code", hint: hint)
                    ok = false
                }
            }
            matchers = resolved
        }

        var requirement: Requirement?
        if syntax.effect.value == .allow {
            switch (syntax.consent, syntax.basis) {
            case (nil, nil):
                error("missing-requirement", syntax.location, "permission '\(id)' states neither `consent` nor `basis`", hint: "add `consent: opt_in`, `consent: opt_out` or `basis: contract` (or another legal basis)")
                ok = false
            case (.some, .some):
                error("two-requirements", syntax.basis!.location, "permission '\(id)' states both `consent` and `basis`", hint: "a permission relies on exactly one: keep `consent` or `basis`, or split it into two rules")
                ok = false
            case let (consent?, nil):
                switch consent.value {
                case "opt_in": requirement = .optIn
                case "opt_out": requirement = .optOut
                default:
                    error("bad-value", consent.location, "consent must be `opt_in` or `opt_out`, not '\(consent.value)'", hint: Suggest.didYouMean(consent.value, in: PolicyKeys.consentModes))
                    ok = false
                }
            case let (nil, basis?):
                if let parsed = LegalBasis(name: basis.value), parsed != .consent {
                    requirement = .basis(parsed)
                } else if basis.value == "consent" {
                    error("bad-value", basis.location, "`basis: consent` is written `consent: opt_in` or `consent: opt_out`")
                    ok = false
                } else {
                    let bases = LegalBasis.allCases.filter { $0 != .consent }.map(\.description)
                    error("bad-value", basis.location, "unknown legal basis '\(basis.value)'", hint: Suggest.didYouMean(basis.value, in: bases) ?? "one of: \(bases.joined(separator: ", "))")
                    ok = false
                }
            }
        } else {
            for (name, location) in [("consent", syntax.consent?.location), ("basis", syntax.basis?.location), ("max_age", syntax.maxAge?.location), ("min_notice_version", syntax.minNoticeVersion?.location)] {
                if let location {
                    error("not-for-prohibition", location, "`\(name)` has no meaning on prohibition '\(id)'", hint: "a prohibition's exception is written `unless: {consent: opt_in}`")
                    ok = false
                }
            }
            if !syntax.obligations.isEmpty {
                warning("not-for-prohibition", syntax.obligations[0].location, "obligations on prohibition '\(id)' are never returned", hint: "obligations come back only with an allow; move them to a permission")
            }
        }

        var maxAge: TimeSpan?
        if let text = syntax.maxAge {
            if let span = TimeSpan(policyText: text.value) { maxAge = span } else {
                error("bad-duration", text.location, "max_age '\(text.value)' is not a duration", hint: "a positive whole number followed by s, m, h or d, e.g. 395d")
                ok = false
            }
        }
        if let minNotice = syntax.minNoticeVersion, minNotice.value < 1 {
            error("out-of-range", minNotice.location, "min_notice_version starts at 1")
            ok = false
        }
        if requirement == .optOut || { if case .basis = requirement { true } else { false } }() {
            for (name, location) in [("max_age", syntax.maxAge?.location), ("min_notice_version", syntax.minNoticeVersion?.location)] {
                if let location { warning("no-effect", location, "`\(name)` has no effect on permission '\(id)': only `consent: opt_in` checks the grant") }
            }
        }
        for obligation in syntax.obligations where obligation.value.hasPrefix("retention: ") {
            let value = String(obligation.value.dropFirst("retention: ".count))
            if TimeSpan(policyText: value) == nil {
                error("bad-duration", obligation.location, "retention '\(value)' is not a duration", hint: "e.g. `retention: 30d`")
                ok = false
            }
        }

        var unlessConsent = false
        var signalsTrue: UInt8 = 0
        var signalsFalse: UInt8 = 0
        var signalsAny: UInt8 = 0
        if let unless = syntax.unless {
            for name in unless.any { signalsAny |= RequestSignal(rawValue: name.value)!.bit }
            if let consent = unless.consent {
                if syntax.effect.value == .allow {
                    error("bad-unless", consent.location, "`unless: {consent: …}` only lifts prohibitions", hint: "a permission already states its consent requirement with `consent:`")
                    ok = false
                } else if consent.value != "opt_in" {
                    error("bad-value", consent.location, "a prohibition's `unless.consent` must be `opt_in`, not '\(consent.value)'")
                    ok = false
                } else {
                    unlessConsent = true
                }
            }
            for (name, value) in unless.signals {
                let bit = RequestSignal(rawValue: name.value)!.bit
                if value { signalsTrue |= bit } else { signalsFalse |= bit }
            }
        }
        guard ok, let purposeIDs, let dataIDs else { return nil }
        return ResolvedRule(
            syntax: syntax, requirement: requirement, purposeIDs: purposeIDs, dataIDs: dataIDs,
            matchers: matchers, maxAge: maxAge, unlessConsent: unlessConsent,
            unlessSignalsTrue: signalsTrue, unlessSignalsFalse: signalsFalse, unlessSignalsAny: signalsAny, order: rules.count
        )
    }

    // MARK: check-rules (lint of the whole set)

    static func checkRules(_ c: inout Compilation) {
        guard let purposes = c.purposes, let data = c.dataCategories else { return }
        // More than 63 distinct channels do not fit the channel mask.
        let channels = Set(c.rules.flatMap { $0.syntax.channels?.map(\.value) ?? [] })
        if channels.count > 63, let rule = c.rules.first(where: { $0.syntax.channels != nil }) {
            c.error("too-many-channels", rule.syntax.location, "the set names \(channels.count) channels; at most 63 are supported")
        }
        let rules = c.rules
        let prohibitions = rules.indices.filter { rules[$0].syntax.effect.value == .deny && rules[$0].syntax.unless == nil }
        let permissions = rules.indices.filter { rules[$0].syntax.effect.value == .allow }
        for permission in permissions {
            if let shadow = prohibitions.first(where: { rules[$0].shadows(rules[permission], purposes: purposes, data: data) }) {
                c.warning("shadowed-permission", rules[permission].syntax.id.location,
                          "permission '\(rules[permission].syntax.id.value)' can never allow: prohibition '\(rules[shadow].syntax.id.value)' matches every request it matches",
                          hint: "narrow the prohibition (\(rules[shadow].syntax.location)), give it an `unless`, or remove the permission")
            }
        }
        // Permissions grouped by scope: a later one whose requirement differs from an earlier one's.
        var byScope: [ScopeKey: [Int]] = [:]
        for permission in permissions {
            let key = rules[permission].scopeKey
            let signature = rules[permission].requirementSignature
            if let earlier = byScope[key]?.first(where: { rules[$0].requirementSignature != signature }) {
                c.warning("conflicting-permissions", rules[permission].syntax.id.location,
                          "permissions '\(rules[earlier].syntax.id.value)' and '\(rules[permission].syntax.id.value)' cover the same scope with different requirements",
                          hint: "whichever holds allows, so the stricter requirement (see \(rules[earlier].syntax.location)) is moot; merge them or make their scopes differ")
            }
            byScope[key, default: []].append(permission)
        }
    }

    // MARK: build

    func build() -> PolicySet {
        var channelBits: [String: UInt64] = [:]
        for name in Set(rules.flatMap { $0.syntax.channels?.map(\.value) ?? [] }).sorted() {
            channelBits[name] = 1 << UInt64(channelBits.count)
        }
        var ruleData: [UInt32] = []
        var cores: [RuleCore] = []
        var infos: [RuleInfo] = []
        for rule in rules {
            let syntax = rule.syntax
            var basis = LegalBasis.consent
            var kind: UInt8 = 0
            switch rule.requirement {
            case .optIn?: kind = 0
            case .optOut?: kind = 1
            case let .basis(b)?: kind = 2; basis = b
            case nil: break
            }
            var mask = UInt64.max
            if let channels = syntax.channels {
                mask = channels.reduce(0) { $0 | channelBits[$1.value]! }
            }
            cores.append(RuleCore(
                effect: syntax.effect.value, requirementKind: kind, basis: basis,
                hasUnless: syntax.unless != nil, unlessConsent: rule.unlessConsent,
                unlessSignalsTrue: rule.unlessSignalsTrue, unlessSignalsFalse: rule.unlessSignalsFalse,
                unlessSignalsAny: rule.unlessSignalsAny,
                minNotice: syntax.minNoticeVersion.map { UInt32($0.value) } ?? 0,
                maxAge: rule.maxAge?.microseconds ?? 0, channelMask: mask,
                dataStart: Int32(ruleData.count), dataCount: Int32(rule.dataIDs.count)
            ))
            ruleData += rule.dataIDs
            var unlessText: String?
            if let unless = syntax.unless {
                var parts: [String] = []
                if let consent = unless.consent { parts.append("consent: \(consent.value)") }
                for (name, value) in unless.signals { parts.append("\(name.value): \(value)") }
                if !unless.any.isEmpty { parts.append("any_of: [\(unless.any.map(\.value).joined(separator: ", "))]") }
                unlessText = parts.joined(separator: ", ")
            }
            infos.append(RuleInfo(
                id: syntax.id.value, location: syntax.location, description: syntax.description,
                effect: syntax.effect.value, requirement: rule.requirement,
                purposes: syntax.purposes?.map(\.value) ?? [], data: syntax.data?.map(\.value) ?? [],
                jurisdictions: syntax.jurisdictions?.map(\.value), channels: syntax.channels?.map(\.value),
                maxAge: rule.maxAge, minNoticeVersion: syntax.minNoticeVersion.map { UInt32($0.value) },
                unless: unlessText, obligations: syntax.obligations.map(\.value), order: rule.order
            ))
        }
        return PolicySet(
            revision: PolicyCompiler.revision(of: sources), vocabulary: vocabulary,
            purposes: purposes!, dataCategories: dataCategories!,
            purposeAttributes: purposeAttributes, dataAttributes: dataAttributes,
            jurisdictionGroups: groupMembers, rules: infos, cores: cores, ruleData: ruleData,
            rulePurposes: rules.map(\.purposeIDs), jurisdictionMatchers: rules.map(\.matchers),
            channelBits: channelBits, defaultEffect: defaultEffect, files: sources.map(\.path),
            tcfVendorId: tcfVendorId?.value
        )
    }
}

/// A rule whose names are resolved, between parsing and building.
struct ResolvedRule {
    var syntax: RuleSyntax
    var requirement: Requirement?
    var purposeIDs: [UInt32]
    var dataIDs: [UInt32]
    var matchers: [JurisdictionMatcher]?
    var maxAge: TimeSpan?
    var unlessConsent: Bool
    var unlessSignalsTrue: UInt8
    var unlessSignalsFalse: UInt8
    var unlessSignalsAny: UInt8
    var order: Int

    /// Whether this (unconditional) prohibition matches every request `other` matches.
    func shadows(_ other: ResolvedRule, purposes: KeyTree, data: KeyTree) -> Bool {
        func keysCover(_ outer: [UInt32], _ inner: [UInt32], _ tree: KeyTree) -> Bool {
            if outer.isEmpty { return true }
            if inner.isEmpty { return false }
            return inner.allSatisfy { key in outer.contains { tree.covers($0, key) } }
        }
        guard keysCover(purposeIDs, other.purposeIDs, purposes), keysCover(dataIDs, other.dataIDs, data) else { return false }
        if let mine = matchers {
            guard let theirs = other.matchers else { return false }
            guard theirs.allSatisfy({ inner in mine.contains { inner.isContained(in: $0) } }) else { return false }
        }
        if let mine = syntax.channels.map({ Set($0.map(\.value)) }) {
            guard let theirs = other.syntax.channels.map({ Set($0.map(\.value)) }), theirs.isSubset(of: mine) else { return false }
        }
        return true
    }

    /// Purposes, data, jurisdictions and channels as sets: equal keys, same scope.
    var scopeKey: ScopeKey {
        ScopeKey(purposes: Set(purposeIDs), data: Set(dataIDs), jurisdictions: matchers.map(Set.init),
                 channels: syntax.channels.map { Set($0.map(\.value)) })
    }

    var requirementSignature: String {
        "\(requirement.map(String.init(describing:)) ?? "-")|\(maxAge?.microseconds ?? 0)|\(syntax.minNoticeVersion?.value ?? 0)|\(unlessSignalsTrue)|\(unlessSignalsFalse)|\(unlessSignalsAny)"
    }
}

/// A rule's scope as sets, for finding permissions over the same scope in one pass.
struct ScopeKey: Hashable {
    var purposes: Set<UInt32>
    var data: Set<UInt32>
    var jurisdictions: Set<JurisdictionMatcher>?
    var channels: Set<String>?
}
