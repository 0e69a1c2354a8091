import ConsentModel
import Foundation
import PolicyEngine
import Testing

/// The policies in Policies/ are the product's starting point: they must lint clean and pass their suites.
@Suite struct ShippedPoliciesTests {
    @Test func theShippedSetCompilesWithoutAnyDiagnostic() throws {
        let (result, _) = try Fixtures.compile(Fixtures.shippedPolicies)
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics.map(\.description).joined(separator: "\n"))")
        #expect(result.policySet != nil)
    }

    @Test func everyShippedSuitePassesAndEveryRuleDecidesSomeCase() throws {
        let (result, tests) = try Fixtures.compile(Fixtures.shippedPolicies)
        let set = try #require(result.policySet)
        let report = PolicyTestRunner.run(tests, against: set)
        for failure in report.failures { Issue.record("\(failure.text)") }
        #expect(report.diagnostics.isEmpty, "\(report.diagnostics)")
        #expect(report.failed == 0)
        for rule in set.rules {
            #expect(report.decidingRules.contains(rule.id), "no shipped test case is decided by rule \(rule.id)")
        }
    }

    @Test func everyRuleFileHasASuiteAndTheSuitesCoverEveryReason() throws {
        let files = try PolicyDirectory.read(Fixtures.shippedPolicies.path)
        let suites = Set(files.tests.map(\.path))
        var reasons = Set<ReasonCode>()
        for source in files.policies {
            guard case .policy? = PolicyParser.parse(source.text, file: source.path).document else { continue }
            let suite = source.path.replacingOccurrences(of: ".yaml", with: "_test.yaml")
            #expect(suites.contains(suite), "\(source.path) has no \(suite)")
        }
        for source in files.tests {
            if case let .test(suite)? = PolicyParser.parse(source.text, file: source.path).document {
                reasons.formUnion(suite.cases.compactMap(\.expectReason))
            }
        }
        #expect(reasons == Set(ReasonCode.allCases), "missing: \(Set(ReasonCode.allCases).subtracting(reasons))")
    }

    @Test func theEEAGroupIsComplete() throws {
        let (result, _) = try Fixtures.compile(Fixtures.shippedPolicies)
        let set = try #require(result.policySet)
        let eu27 = ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"]
        #expect(Set(set.jurisdictionGroups["EEA"] ?? []) == Set(eu27 + ["IS", "LI", "NO"]))
    }
}
