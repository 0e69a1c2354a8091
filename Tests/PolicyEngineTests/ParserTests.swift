import ConsentModel
import PolicyEngine
import Testing

@Suite struct ParserTests {
    @Test func yamlErrorsPointAtTheLineAndColumn() {
        let (document, diagnostics) = PolicyParser.parse("apiVersion: consentd/v1\nkind: Policy\nrules:\n  - id: x\n    effect: [allow\n", file: "p.yaml")
        #expect(document == nil)
        let diagnostic = diagnostics.first
        #expect(diagnostic?.code == "yaml-syntax")
        #expect(diagnostic?.location.file == "p.yaml")
        #expect((diagnostic?.location.line ?? 0) >= 5)
    }

    @Test func unknownKeysAreReportedWithASuggestion() {
        let text = """
        apiVersion: consentd/v1
        kind: Policy
        rules:
          - id: x
            effect: allow
            purpose: [ads]
            consent: opt_in
        """
        let (_, diagnostics) = PolicyParser.parse(text, file: "p.yaml")
        let diagnostic = diagnostics.first { $0.code == "unknown-key" }
        #expect(diagnostic?.location == SourceLocation(file: "p.yaml", line: 6, column: 5))
        #expect(diagnostic?.hint == "did you mean 'purposes'?")
    }

    @Test func norwayIsACodeNotABoolean() {
        let text = "apiVersion: consentd/v1\nkind: Taxonomy\njurisdictions:\n  NORDIC: [NO, SE]\n"
        guard case let .taxonomy(taxonomy)? = PolicyParser.parse(text, file: "t.yaml").document else {
            Issue.record("not parsed")
            return
        }
        #expect(taxonomy.jurisdictions.first?.members.map(\.value) == ["NO", "SE"])
    }

    @Test(arguments: [
        ("apiVersion: consentd/v2\nkind: Policy\n", "unknown-api-version"),
        ("kind: Policy\n", "missing-key"),
        ("apiVersion: consentd/v1\n", "missing-key"),
        ("apiVersion: consentd/v1\nkind: Rules\n", "unknown-kind"),
        ("- a\n- b\n", "not-a-document"),
        ("apiVersion: consentd/v1\nkind: Policy\nrules: {}\n", "wrong-type"),
        ("apiVersion: consentd/v1\nkind: Policy\ndefault: maybe\n", "bad-value"),
        ("apiVersion: consentd/v1\nkind: PolicyTest\n", "missing-key"),
        ("apiVersion: consentd/v1\nkind: PolicyTest\nnow: yesterday\n", "bad-time"),
    ])
    func documentShapeErrors(text: String, code: String) {
        let (_, diagnostics) = PolicyParser.parse(text, file: "f.yaml")
        #expect(diagnostics.contains { $0.code == code && $0.severity == .error }, "\(diagnostics)")
    }

    @Test func consentFilesAcceptAListOrAConsentKey() {
        let list = PolicyParser.parseRecords(text: "- {subject: a, purpose: p, choice: grant, at: 2026-01-01}\n", file: "c.yaml")
        #expect(list.records.count == 1)
        #expect(list.diagnostics.isEmpty)
        let keyed = PolicyParser.parseRecords(text: "consent:\n  - {subject: a, purpose: p, choice: deny, at: 2026-01-01T00:00:00Z, expires: 2026-02-01}\n", file: "c.yaml")
        #expect(keyed.records.first?.record.choice == .deny)
        #expect(keyed.records.first?.record.expiresAt == Timestamp(rfc3339: "2026-02-01T00:00:00Z"))
        let bad = PolicyParser.parseRecords(text: "- {subject: a, purpose: p, choice: maybe}\n", file: "c.yaml")
        #expect(bad.records.isEmpty)
        #expect(Set(bad.diagnostics.map(\.code)) == ["bad-value", "missing-key"])
    }
}

@Suite struct CompilerTests {
    static let taxonomy = "apiVersion: consentd/v1\nkind: Taxonomy\npurposes: {p: {}}\ndata_categories: {d: {}}\njurisdictions: {G: [DE, US-*]}\n"

    static func policy(jurisdictions: String) -> String {
        "apiVersion: consentd/v1\nkind: Policy\nrules:\n  - {id: r, effect: allow, purposes: [p], consent: opt_out, jurisdictions: \(jurisdictions)}\n"
    }

    @Test(arguments: [
        ("[DE]", "DE", true), ("[DE]", "DE-BY", true), ("[DE]", "de", true), ("[DE]", "FR", false),
        ("[DE-BY]", "DE-BY", true), ("[DE-BY]", "DE", false), ("[DE-BY]", "DE-BE", false),
        ("[US-*]", "US-CA", true), ("[US-*]", "US", false), ("[US-*]", "USA", nil),
        ("[G]", "DE", true), ("[G]", "US-NY", true), ("[G]", "US", false), ("[G]", "FR", false),
        ("[DE]", "", nil), ("[DE]", "D", nil), ("[DE]", "DE-", nil), ("[DE]", "DE-TOOLONG", nil),
    ] as [(String, String, Bool?)])
    func jurisdictionMatching(rule: String, code: String, matches: Bool?) throws {
        let set = try #require(Fixtures.compile(["t.yaml": Self.taxonomy, "p.yaml": Self.policy(jurisdictions: rule)]).policySet)
        let decision = set.decide(DecisionRequest(subject: "s", purpose: "p", dataCategory: "d", context: RequestContext(jurisdiction: code)), consent: [], now: Timestamp(seconds: 0))
        switch matches {
        case true?: #expect(decision.reason == .notOptedOut)
        case false?: #expect(decision.reason == .noMatchingRule)
        case nil: #expect(decision.reason == .invalidRequest)
        }
    }

    @Test func theRevisionHashesEveryPolicyFileButNotTheTests() {
        let a = [PolicySource(path: "t.yaml", text: Self.taxonomy), PolicySource(path: "p.yaml", text: Self.policy(jurisdictions: "[DE]"))]
        let withTest = a + [PolicySource(path: "p_test.yaml", text: "anything")]
        let edited = [a[0], PolicySource(path: "p.yaml", text: Self.policy(jurisdictions: "[FR]"))]
        let renamed = [a[0], PolicySource(path: "q.yaml", text: a[1].text)]
        #expect(PolicyCompiler.revision(of: a) == PolicyCompiler.revision(of: a.reversed()))
        #expect(PolicyCompiler.revision(of: a) == PolicyCompiler.revision(of: withTest))
        #expect(PolicyCompiler.revision(of: a) != PolicyCompiler.revision(of: edited))
        #expect(PolicyCompiler.revision(of: a) != PolicyCompiler.revision(of: renamed))
        let revision = PolicyCompiler.revision(of: a)
        #expect(revision.allSatisfy { $0.isHexDigit })
    }

    @Test func anEmptySetAndASetWithoutTaxonomyDoNotCompile() {
        #expect(PolicyCompiler.compile([], vocabulary: Vocabulary()).diagnostics.map(\.code) == ["empty-policy-set"])
        let noTaxonomy = Fixtures.compile(["p.yaml": Self.policy(jurisdictions: "[DE]")])
        #expect(noTaxonomy.policySet == nil)
        #expect(noTaxonomy.diagnostics.map(\.code).contains("no-taxonomy"))
    }

    @Test func aDefaultOfAllowAppliesWhenNothingMatches() throws {
        let policy = "apiVersion: consentd/v1\nkind: Policy\ndefault: allow\nrules: []\n"
        let result = Fixtures.compile(["t.yaml": Self.taxonomy, "p.yaml": policy])
        let set = try #require(result.policySet)
        let decision = set.decide(DecisionRequest(subject: "s", purpose: "p", dataCategory: "d"), consent: [], now: Timestamp(seconds: 0))
        #expect(decision.effect == .allow)
        #expect(decision.reason == .noMatchingRule)
        #expect(set.decide(DecisionRequest(subject: "s", purpose: "q", dataCategory: "d"), consent: [], now: Timestamp(seconds: 0)).effect == .deny)
    }

    @Test func compilerStagesAreNamed() {
        #expect(PolicyCompiler.stageNames == ["parse", "declare-taxonomy", "resolve-jurisdictions", "resolve-rules", "check-rules"])
    }

    @Test func explainListsEveryRuleAndTheEffectiveRecord() throws {
        let vocabulary = Vocabulary()
        let set = try #require(Fixtures.compile(["t.yaml": Self.taxonomy, "p.yaml": Self.policy(jurisdictions: "[G]")], vocabulary: vocabulary).policySet)
        let records = [
            ConsentRecord(sequence: 1, subject: "s", purpose: "p", choice: .grant, recordedAt: Timestamp(seconds: 10)),
            ConsentRecord(sequence: 2, subject: "s", purpose: "p", choice: .deny, recordedAt: Timestamp(seconds: 20)),
        ].map { $0.compact(in: vocabulary) }
        let explanation = set.explain(DecisionRequest(subject: "s", purpose: "p", dataCategory: "d", context: RequestContext(jurisdiction: "DE")), consent: records[...], now: Timestamp(seconds: 30))
        #expect(explanation.decision.reason == .consentDenied)
        #expect(explanation.rules.count == 1)
        #expect(explanation.rules.first?.outcome == .permissionUnmet(.consentDenied))
        #expect(explanation.effectiveRecord == 1)
        #expect(explanation.text.contains("#2 deny p at 1970-01-01T00:00:20Z via unknown: EFFECTIVE"))
    }
}
