import ConsentModel
import ConsentSignals
import Yams

/// Turns the text of one policy-directory file into a syntax tree with locations.
///
/// Every problem becomes a `Diagnostic`; a document is returned whenever its kind could be
/// determined, so that later stages can report more than the first mistake.
public enum PolicyParser {
    /// The only `apiVersion` this build reads.
    public static let apiVersion = "consentd/v1"
    /// The document kinds.
    public static let kinds = ["Taxonomy", "Policy", "PolicyTest"]

    /// Parses one file. `file` is the path used in diagnostics.
    public static func parse(_ text: String, file: String) -> (document: PolicyDocument?, diagnostics: [Diagnostic]) {
        var reader = NodeReader(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text, .basic)
        } catch let error as YamlError {
            reader.diagnostics.append(yamlDiagnostic(error, file: file))
            return (nil, reader.diagnostics)
        } catch {
            reader.diagnostics.append(Diagnostic(.error, "yaml-syntax", at: SourceLocation(file: file, line: 1, column: 1), "cannot read YAML: \(error)"))
            return (nil, reader.diagnostics)
        }
        guard let root, case .mapping = root else {
            let at = root.map { reader.location($0) } ?? SourceLocation(file: file, line: 1, column: 1)
            reader.diagnostics.append(Diagnostic(.error, "not-a-document", at: at, "a policy file must be a mapping starting with `apiVersion: \(apiVersion)` and a `kind`"))
            return (nil, reader.diagnostics)
        }
        let mapping = root.mapping!
        guard let versionNode = mapping["apiVersion"] else {
            reader.error("missing-key", root, "missing `apiVersion`", hint: "start the file with `apiVersion: \(apiVersion)`")
            return (nil, reader.diagnostics)
        }
        guard versionNode.scalar?.string == apiVersion else {
            reader.error("unknown-api-version", versionNode, "unknown apiVersion '\(versionNode.scalar?.string ?? "?")'", hint: "this version of consentd reads `apiVersion: \(apiVersion)`")
            return (nil, reader.diagnostics)
        }
        guard let kindNode = mapping["kind"] else {
            reader.error("missing-key", root, "missing `kind`", hint: "one of: \(kinds.joined(separator: ", "))")
            return (nil, reader.diagnostics)
        }
        let kind = kindNode.scalar?.string ?? ""
        let document: PolicyDocument?
        switch kind {
        case "Taxonomy": document = parseTaxonomy(root, &reader).map(PolicyDocument.taxonomy)
        case "Policy": document = parsePolicy(root, &reader).map(PolicyDocument.policy)
        case "PolicyTest": document = parseTest(root, &reader).map(PolicyDocument.test)
        default:
            let hint = Suggest.didYouMean(kind, in: kinds) ?? "one of: \(kinds.joined(separator: ", "))"
            reader.error("unknown-kind", kindNode, "unknown kind '\(kind)'", hint: hint)
            document = nil
        }
        return (document, reader.diagnostics)
    }

    static func yamlDiagnostic(_ error: YamlError, file: String) -> Diagnostic {
        let (mark, problem): (Mark?, String) = switch error {
        case let .scanner(context, problem, mark, _): (mark, [context?.nonEmptyText, problem].compactMap { $0 }.joined(separator: " "))
        case let .parser(context, problem, mark, _): (mark, [context?.nonEmptyText, problem].compactMap { $0 }.joined(separator: " "))
        case let .composer(context, problem, mark, _): (mark, [context?.nonEmptyText, problem].compactMap { $0 }.joined(separator: " "))
        case let .duplicatedKeysInMapping(duplicates, context): (context.mark, "duplicate keys \(duplicates.joined(separator: ", ")) in one mapping")
        case let .reader(problem, _, _, _): (nil, problem)
        default: (nil, "\(error)")
        }
        let at = SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
        if case .duplicatedKeysInMapping = error {
            return Diagnostic(.error, "duplicate-key", at: at, "YAML: \(problem)", hint: "each key may appear once in a mapping; merge the two entries")
        }
        return Diagnostic(.error, "yaml-syntax", at: at, "YAML: \(problem)", hint: "check indentation, quoting and that every `{`/`[` is closed")
    }

    // MARK: Taxonomy

    static func parseTaxonomy(_ root: Node, _ reader: inout NodeReader) -> TaxonomySyntax? {
        guard let fields = reader.fields(root, "a Taxonomy", keys: PolicyKeys.taxonomy) else { return nil }
        var taxonomy = TaxonomySyntax(location: reader.location(root))
        if let node = fields["purposes"] { taxonomy.purposes = parseNodes(node, "purposes", purpose: true, &reader) }
        if let node = fields["data_categories"] { taxonomy.dataCategories = parseNodes(node, "data_categories", purpose: false, &reader) }
        if let node = fields["tcf_vendor_id"] { taxonomy.tcfVendorId = reader.int(node, "tcf_vendor_id", range: 1...65535) }
        if let node = fields["jurisdictions"] {
            if case let .mapping(groups) = node {
                for (key, value) in groups {
                    guard let name = reader.string(key, "a jurisdiction group name"),
                          let members = reader.stringList(value, "jurisdiction group '\(name.value)'") else { continue }
                    taxonomy.jurisdictions.append(JurisdictionGroupSyntax(name: name, members: members))
                }
            } else if !reader.isNull(node) {
                reader.error("wrong-type", node, "jurisdictions must map group names to lists of codes", hint: "e.g. `EEA: [AT, BE, DE]`")
            }
        }
        return taxonomy
    }

    static func parseNodes(_ node: Node, _ what: String, purpose: Bool, _ reader: inout NodeReader) -> [TaxonomyNodeSyntax] {
        guard case let .mapping(mapping) = node else {
            if !reader.isNull(node) { reader.error("wrong-type", node, "\(what) must map dotted keys to attributes", hint: "e.g. `marketing.email: {description: …}`") }
            return []
        }
        let table = purpose ? PolicyKeys.purposeNode : PolicyKeys.dataNode
        var nodes: [TaxonomyNodeSyntax] = []
        for (key, value) in mapping {
            guard let name = reader.string(key, "a \(what) key") else { continue }
            var item = TaxonomyNodeSyntax(key: name)
            if reader.isNull(value) { nodes.append(item); continue }
            guard let fields = reader.fields(value, "\(what) entry '\(name.value)'", keys: table) else { continue }
            for (field, _, value) in fields.entries {
                switch field {
                case "description": item.description = reader.string(value, "description")?.value
                case "sale_or_sharing": item.saleOrSharing = reader.bool(value, "sale_or_sharing") ?? false
                case "sensitive": item.sensitive = reader.bool(value, "sensitive") ?? false
                case "tcf_purposes":
                    for entry in reader.sequence(value, "tcf_purposes") ?? [] {
                        if let n = reader.int(entry, "a TCF purpose", range: 1...11) { item.tcfPurposes.append(n.value) }
                    }
                case "tcf_special_feature": item.tcfSpecialFeature = reader.int(value, "tcf_special_feature", range: 1...2)?.value
                case "gpp_sensitive_data":
                    guard case let .mapping(positions) = value else {
                        reader.error("wrong-type", value, "gpp_sensitive_data must map GPP US sections to positions", hint: "e.g. `gpp_sensitive_data: {usnat: 8, usca: 3}`")
                        continue
                    }
                    for (sectionNode, positionNode) in positions {
                        guard let section = reader.string(sectionNode, "a GPP section name") else { continue }
                        guard let layout = USSectionLayout.sensitiveDataSections.first(where: { "\($0.name)" == section.value }) else {
                            let names = USSectionLayout.sensitiveDataSections.map { "\($0.name)" }.joined(separator: ", ")
                            reader.error("unknown-key", sectionNode, "'\(section.value)' is not a GPP US section with sensitive data", hint: "one of \(names)")
                            continue
                        }
                        let count = layout.offset(of: .sensitiveDataProcessing)!.count
                        if let position = reader.int(positionNode, "a SensitiveDataProcessing position in \(section.value)", range: 1...count) {
                            item.gppSensitiveData[layout.sectionId] = position.value
                        }
                    }
                case "labels":
                    if case let .mapping(labels) = value {
                        for (k, v) in labels {
                            if let k = reader.string(k, "a label name"), let v = reader.string(v, "label '\(k.value)'") { item.labels[k.value] = v.value }
                        }
                    } else {
                        reader.error("wrong-type", value, "labels must map names to strings")
                    }
                default: break
                }
            }
            nodes.append(item)
        }
        return nodes
    }

    // MARK: Policy

    static func parsePolicy(_ root: Node, _ reader: inout NodeReader) -> PolicySyntax? {
        guard let fields = reader.fields(root, "a Policy", keys: PolicyKeys.policy) else { return nil }
        var policy = PolicySyntax(location: reader.location(root))
        if let node = fields["name"] { policy.name = reader.string(node, "name") }
        if let node = fields["description"] { policy.description = reader.string(node, "description")?.value }
        if let node = fields["default"], let text = reader.string(node, "default") {
            if let effect = Effect(name: text.value) {
                policy.defaultEffect = Located(effect, at: text.location)
            } else {
                reader.error("bad-value", node, "default must be `allow` or `deny`, not '\(text.value)'")
            }
        }
        if let node = fields["rules"] {
            for item in reader.sequence(node, "rules") ?? [] {
                if let rule = parseRule(item, &reader) { policy.rules.append(rule) }
            }
        }
        return policy
    }

    static func parseRule(_ node: Node, _ reader: inout NodeReader) -> RuleSyntax? {
        guard let fields = reader.fields(node, "a rule", keys: PolicyKeys.rule) else { return nil }
        guard let idNode = fields["id"], let id = reader.string(idNode, "id") else {
            if !fields.has("id") { reader.error("missing-key", node, "a rule needs an `id`", hint: "add `id: some-unique-name`") }
            return nil
        }
        guard let effectNode = fields["effect"] else {
            reader.error("missing-key", node, "rule '\(id.value)' needs an `effect`", hint: "`effect: allow` for a permission, `effect: deny` for a prohibition")
            return nil
        }
        guard let effectText = reader.string(effectNode, "effect") else { return nil }
        guard let effect = Effect(name: effectText.value) else {
            reader.error("bad-value", effectNode, "effect must be `allow` or `deny`, not '\(effectText.value)'")
            return nil
        }
        var rule = RuleSyntax(id: id, effect: Located(effect, at: effectText.location), location: reader.location(node))
        for (field, _, value) in fields.entries {
            switch field {
            case "description": rule.description = reader.string(value, "description")?.value
            case "purposes": rule.purposes = reader.stringList(value, "purposes")
            case "data": rule.data = reader.stringList(value, "data")
            case "jurisdictions": rule.jurisdictions = reader.stringList(value, "jurisdictions")
            case "channels": rule.channels = reader.stringList(value, "channels")
            case "consent": rule.consent = reader.string(value, "consent")
            case "basis": rule.basis = reader.string(value, "basis")
            case "max_age": rule.maxAge = reader.string(value, "max_age")
            case "min_notice_version": rule.minNoticeVersion = reader.int(value, "min_notice_version")
            case "obligations": rule.obligations = parseObligations(value, &reader)
            case "unless": rule.unless = parseUnless(value, &reader)
            default: break
            }
        }
        return rule
    }

    static func parseObligations(_ node: Node, _ reader: inout NodeReader) -> [Located<String>] {
        var obligations: [Located<String>] = []
        for item in reader.sequence(node, "obligations") ?? [] {
            switch item {
            case .scalar:
                if let text = reader.string(item, "an obligation") { obligations.append(text) }
            case let .mapping(mapping) where mapping.count == 1:
                let (key, value) = mapping.first!
                guard let name = reader.string(key, "an obligation name"), let argument = reader.string(value, "obligation '\(name.value)'") else { continue }
                obligations.append(Located("\(name.value): \(argument.value)", at: name.location))
            default:
                reader.error("wrong-type", item, "an obligation is a name (`pseudonymize`) or one `name: value` pair (`retention: 30d`)")
            }
        }
        return obligations
    }

    static func parseUnless(_ node: Node, _ reader: inout NodeReader) -> UnlessSyntax? {
        guard let fields = reader.fields(node, "unless", keys: PolicyKeys.unless) else { return nil }
        var unless = UnlessSyntax(location: reader.location(node))
        for (field, key, value) in fields.entries {
            if field == "consent" {
                unless.consent = reader.string(value, "unless.consent")
            } else if field == "any_of" {
                for entry in reader.sequence(value, "unless.any_of") ?? [] {
                    guard let name = reader.string(entry, "a signal in unless.any_of") else { continue }
                    guard RequestSignal(rawValue: name.value) != nil else {
                        reader.error("unknown-key", entry, "'\(name.value)' is not a request signal", hint: "one of \(PolicyKeys.signals.joined(separator: ", "))")
                        continue
                    }
                    unless.any.append(name)
                }
                if unless.any.isEmpty { reader.error("empty-unless", value, "`unless.any_of` names no signal") }
            } else if let flag = reader.bool(value, "unless.\(field)") {
                unless.signals.append((Located(field, at: reader.location(key)), flag))
            }
        }
        if unless.consent == nil && unless.signals.isEmpty && unless.any.isEmpty {
            reader.error("empty-unless", node, "`unless` states no condition", hint: "e.g. `unless: {gpc: true}` or `unless: {consent: opt_in}`; or remove it")
        }
        return unless
    }

    // MARK: PolicyTest

    static func parseTest(_ root: Node, _ reader: inout NodeReader) -> PolicyTestSyntax? {
        guard let fields = reader.fields(root, "a PolicyTest", keys: PolicyKeys.test) else { return nil }
        var suite = PolicyTestSyntax(location: reader.location(root))
        if let node = fields["name"] { suite.name = reader.string(node, "name") }
        if let node = fields["now"] { suite.now = timestamp(node, "now", &reader) }
        if let node = fields["consent"] { suite.consent = parseRecords(node, &reader) }
        if let node = fields["cases"] {
            for item in reader.sequence(node, "cases") ?? [] {
                if let testCase = parseCase(item, &reader) { suite.cases.append(testCase) }
            }
        }
        if suite.now == nil {
            reader.error("missing-key", root, "a PolicyTest needs `now`, the instant its cases are decided at", hint: "e.g. `now: 2026-06-01T00:00:00Z`")
        }
        return suite
    }

    static func timestamp(_ node: Node, _ what: String, _ reader: inout NodeReader) -> Located<Timestamp>? {
        guard let text = reader.string(node, what) else { return nil }
        guard let value = Timestamp(rfc3339: text.value) else {
            reader.error("bad-time", node, "\(what) '\(text.value)' is not an RFC 3339 time", hint: "e.g. 2026-06-01T00:00:00Z")
            return nil
        }
        return Located(value, at: text.location)
    }

    /// Reads a list of consent records (the `consent:` of a test suite, or a `--consent` file).
    public static func parseRecords(text: String, file: String) -> (records: [TestRecordSyntax], diagnostics: [Diagnostic]) {
        var reader = NodeReader(file: file)
        do {
            guard let root = try Yams.compose(yaml: text, .basic) else { return ([], []) }
            var node = root
            if case let .mapping(mapping) = root, let list = mapping["consent"] { node = list }
            return (parseRecords(node, &reader), reader.diagnostics)
        } catch let error as YamlError {
            return ([], [yamlDiagnostic(error, file: file)])
        } catch {
            return ([], [Diagnostic(.error, "yaml-syntax", at: SourceLocation(file: file, line: 1, column: 1), "cannot read YAML: \(error)")])
        }
    }


    static func parseRecords(_ node: Node, _ reader: inout NodeReader) -> [TestRecordSyntax] {
        var records: [TestRecordSyntax] = []
        for (index, item) in (reader.sequence(node, "consent") ?? []).enumerated() {
            guard let fields = reader.fields(item, "a consent record", keys: PolicyKeys.record) else { continue }
            var ok = true
            func required(_ name: String, _ reader: inout NodeReader) -> Located<String>? {
                guard let node = fields[name] else {
                    reader.error("missing-key", item, "a consent record needs `\(name)`")
                    ok = false
                    return nil
                }
                let value = reader.string(node, name)
                if value == nil { ok = false }
                return value
            }
            let subject = required("subject", &reader)
            let purpose = required("purpose", &reader)
            let choiceText = required("choice", &reader)
            let at = fields["at"].flatMap { timestamp($0, "at", &reader) }
            if fields["at"] == nil { reader.error("missing-key", item, "a consent record needs `at`, when the choice was made"); ok = false }
            var choice = Choice.grant
            if let choiceText {
                if let parsed = Choice(name: choiceText.value) { choice = parsed } else {
                    reader.error("bad-value", fields["choice"]!, "choice must be `grant` or `deny`, not '\(choiceText.value)'"); ok = false
                }
            }
            var record = ConsentRecord(subject: subject?.value ?? "", purpose: purpose?.value ?? "", choice: choice, recordedAt: at?.value ?? .distantPast)
            record.sequence = UInt64(index + 1)
            if let node = fields["data"] { record.dataCategory = reader.string(node, "data")?.value }
            if let node = fields["expires"] { record.expiresAt = timestamp(node, "expires", &reader)?.value }
            if let node = fields["basis"], let text = reader.string(node, "basis") {
                if let basis = LegalBasis(name: text.value) { record.legalBasis = basis } else {
                    reader.error("bad-value", node, "unknown legal basis '\(text.value)'", hint: Suggest.didYouMean(text.value, in: LegalBasis.allCases.map(\.description)))
                }
            }
            if let node = fields["source"] { record.source = reader.string(node, "source")?.value ?? record.source }
            if let node = fields["notice_version"] { record.noticeVersion = reader.int(node, "notice_version").map { UInt32($0.value) } }
            if let node = fields["jurisdiction"] { record.jurisdiction = reader.string(node, "jurisdiction")?.value }
            if let node = fields["evidence"] { record.evidence = reader.string(node, "evidence")?.value }
            if let node = fields["sequence"], let n = reader.int(node, "sequence", range: 1...Int.max) { record.sequence = UInt64(n.value) }
            if let subject, let problem = Identifier.subjectProblem(subject.value) {
                reader.error("bad-value", fields["subject"]!, problem); ok = false
            }
            if ok { records.append(TestRecordSyntax(record: record, location: reader.location(item))) }
        }
        return records
    }

    static func parseCase(_ node: Node, _ reader: inout NodeReader) -> TestCaseSyntax? {
        guard let fields = reader.fields(node, "a test case", keys: PolicyKeys.testCase) else { return nil }
        let name = fields["name"].flatMap { reader.string($0, "name")?.value } ?? "case at line \(reader.location(node).line)"
        guard let requestNode = fields["request"], let expectNode = fields["expect"] else {
            reader.error("missing-key", node, "test case '\(name)' needs `request` and `expect`")
            return nil
        }
        guard let request = parseRequest(requestNode, &reader),
              let expect = reader.fields(expectNode, "expect", keys: PolicyKeys.expect) else { return nil }
        guard let decisionNode = expect["decision"], let decisionText = reader.string(decisionNode, "decision") else {
            if !expect.has("decision") { reader.error("missing-key", expectNode, "expect needs `decision: allow|deny`") }
            return nil
        }
        guard let decision = Effect(name: decisionText.value) else {
            reader.error("bad-value", decisionNode, "decision must be `allow` or `deny`, not '\(decisionText.value)'")
            return nil
        }
        var testCase = TestCaseSyntax(name: name, request: request, expectDecision: decision, location: reader.location(node))
        if let node = expect["reason"], let text = reader.string(node, "reason") {
            guard let reason = ReasonCode(name: text.value) else {
                reader.error("bad-value", node, "unknown reason code '\(text.value)'", hint: Suggest.didYouMean(text.value, in: ReasonCode.allCases.map(\.description)))
                return nil
            }
            testCase.expectReason = reason
        }
        if let node = fields["consent_unavailable"] { testCase.consentUnavailable = reader.bool(node, "consent_unavailable") ?? false }
        if let node = expect["rule"] { testCase.expectRule = reader.string(node, "rule")?.value }
        if let node = expect["obligations"] { testCase.expectObligations = reader.stringList(node, "obligations")?.map(\.value) }
        return testCase
    }

    static func parseRequest(_ node: Node, _ reader: inout NodeReader) -> TestRequestSyntax? {
        guard let fields = reader.fields(node, "a request", keys: PolicyKeys.request) else { return nil }
        var strings: [String: String] = [:]
        for name in ["subject", "purpose", "data"] {
            guard let value = fields[name].flatMap({ reader.string($0, name) }) else {
                if !fields.has(name) { reader.error("missing-key", node, "a request needs `\(name)`") }
                return nil
            }
            strings[name] = value.value
        }
        var context = RequestContext()
        if let n = fields["jurisdiction"] { context.jurisdiction = reader.string(n, "jurisdiction")?.value }
        if let n = fields["gpc"] { context.gpc = reader.bool(n, "gpc") ?? false }
        if let n = fields["usp_opt_out"] { context.uspOptOut = reader.bool(n, "usp_opt_out") ?? false }
        if let n = fields["channel"] { context.channel = reader.string(n, "channel")?.value }
        if let n = fields["at"] { context.at = timestamp(n, "at", &reader)?.value }
        if let n = fields["tc_string"] { context.tcString = reader.string(n, "tc_string")?.value }
        if let n = fields["gpp_string"] { context.gppString = reader.string(n, "gpp_string")?.value }
        if let n = fields["us_privacy"] { context.usPrivacy = reader.string(n, "us_privacy")?.value }
        if let n = fields["tcf_vendor_id"] { context.tcfVendorId = reader.int(n, "tcf_vendor_id", range: 1...65535).map { UInt32($0.value) } }
        if let n = fields["gpp_sid"] {
            for entry in reader.sequence(n, "gpp_sid") ?? [] {
                if let id = reader.int(entry, "a GPP section id", range: 1...65535) { context.gppSectionIds.append(UInt32(id.value)) }
            }
        }
        return TestRequestSyntax(subject: strings["subject"]!, purpose: strings["purpose"]!, data: strings["data"]!, context: context)
    }
}

extension YamlError.Context {
    fileprivate var nonEmptyText: String? { text.isEmpty ? nil : text }
}
