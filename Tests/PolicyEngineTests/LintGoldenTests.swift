import ConsentModel
import Foundation
import PolicyEngine
import Testing

/// Golden tests for diagnostics: each folder under Fixtures/lint is a policy set whose sorted
/// diagnostics must equal its `expected.txt`. Re-record with `CONSENTD_RECORD_GOLDEN=1 swift test`.
@Suite struct LintGoldenTests {
    static let cases = ["documents", "taxonomy", "rules", "warnings"]

    @Test(arguments: cases)
    func diagnosticsMatchTheGoldenFile(_ name: String) throws {
        let directory = Fixtures.sourceRoot.appendingPathComponent("lint").appendingPathComponent(name)
        let (result, _) = try Fixtures.compile(directory)
        let actual = result.diagnostics.map(\.description).joined(separator: "\n") + "\n"
        let golden = directory.appendingPathComponent("expected.txt")
        if Fixtures.recording {
            try actual.write(to: golden, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: golden, encoding: .utf8)
        #expect(actual == expected, "diagnostics for \(name) differ from expected.txt; re-record with CONSENTD_RECORD_GOLDEN=1 if the change is intended")
    }

    @Test func setsWithErrorsDoNotCompileAndSetsWithOnlyWarningsDo() throws {
        for name in ["documents", "taxonomy", "rules"] {
            let (result, _) = try Fixtures.compile(Fixtures.sourceRoot.appendingPathComponent("lint/\(name)"))
            #expect(result.policySet == nil, "\(name) should not compile")
            #expect(result.diagnostics.hasErrors)
        }
        let (warnings, _) = try Fixtures.compile(Fixtures.sourceRoot.appendingPathComponent("lint/warnings"))
        #expect(warnings.policySet != nil)
        #expect(!warnings.diagnostics.hasErrors)
        #expect(Set(warnings.diagnostics.map(\.code)) == ["shadowed-permission", "conflicting-permissions", "no-effect", "not-for-prohibition", "no-rules"])
    }

    @Test func diagnosticsAreSortedByFileLineAndColumn() throws {
        let (result, _) = try Fixtures.compile(Fixtures.sourceRoot.appendingPathComponent("lint/rules"))
        let locations = result.diagnostics.map(\.location)
        #expect(locations == locations.sorted())
    }
}
