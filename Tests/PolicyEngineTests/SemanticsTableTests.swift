import ConsentModel
import Foundation
import PolicyEngine
import Testing

/// Table-driven semantics: the cases live in Fixtures/semantics/semantics_test.yaml.
@Suite struct SemanticsTableTests {
    @Test func everyCaseOfTheSemanticsTablePasses() throws {
        let (result, tests) = try Fixtures.compile(Fixtures.sourceRoot.appendingPathComponent("semantics"))
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let set = try #require(result.policySet)
        let report = PolicyTestRunner.run(tests, against: set)
        for failure in report.failures { Issue.record("\(failure.text)") }
        #expect(report.diagnostics.isEmpty, "\(report.diagnostics)")
        #expect(report.failed == 0)
        #expect(report.passed >= 30)
    }

    @Test func theTableCoversEveryReasonCode() throws {
        let url = Fixtures.sourceRoot.appendingPathComponent("semantics/semantics_test.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        let (document, _) = PolicyParser.parse(text, file: "semantics_test.yaml")
        guard case let .test(suite)? = document else { Issue.record("not a test suite"); return }
        let covered = Set(suite.cases.compactMap(\.expectReason))
        for reason in ReasonCode.allCases {
            #expect(covered.contains(reason), "no table case expects \(reason)")
        }
    }

    @Test func aWrongExpectationFailsWithBothDecisionsShown() throws {
        let (result, _) = try Fixtures.compile(Fixtures.sourceRoot.appendingPathComponent("semantics"))
        let set = try #require(result.policySet)
        let suite = """
        apiVersion: consentd/v1
        kind: PolicyTest
        now: 2026-06-01T00:00:00Z
        cases:
          - name: wrong on purpose
            request: {subject: s, purpose: ops.billing, data: d}
            expect: {decision: deny, reason: NO_CONSENT, rule: billing}
        """
        let report = PolicyTestRunner.run([PolicySource(path: "x_test.yaml", text: suite)], against: set)
        #expect(report.passed == 0)
        #expect(report.failed == 1)
        let text = try #require(report.failures.first).text
        #expect(text.contains("expected: deny NO_CONSENT by billing"))
        #expect(text.contains("decided:  allow LEGAL_BASIS by billing (rules.yaml:"))
        #expect(report.summary == "0 passed, 1 failed")
    }

    @Test func decisionsCarryEveryContractField() throws {
        let vocabulary = Vocabulary()
        let (result, _) = try Fixtures.compile(Fixtures.sourceRoot.appendingPathComponent("semantics"), vocabulary: vocabulary)
        let set = try #require(result.policySet)
        let grant = ConsentRecord(sequence: 7, subject: "s", purpose: "ads", choice: .grant, recordedAt: Timestamp(rfc3339: "2026-05-20T00:00:00Z")!, source: "web", noticeVersion: 2)
        let request = DecisionRequest(subject: "s", purpose: "ads.targeted", dataCategory: "d.behavior", context: RequestContext(jurisdiction: "DE"))
        let decision = set.decide(request, consent: [grant.compact(in: vocabulary)][...], now: Timestamp(rfc3339: "2026-06-01T00:00:00Z")!)
        let report = set.report(decision)
        #expect(report.effect == .allow)
        #expect(report.reason == .consentGranted)
        #expect(report.ruleID == "eu-targeted")
        #expect(report.ruleLocation?.file == "rules.yaml")
        #expect(report.ruleLocation?.line == 15)
        #expect(report.record?.sequence == 7)
        #expect(report.record?.source == "web")
        #expect(report.record?.noticeVersion == 2)
        #expect(report.legalBasis == .consent)
        #expect(report.obligations == ["pseudonymize"])
        #expect(report.policyRevision == set.revision)
        #expect(set.revision.count == 16)
    }
}
