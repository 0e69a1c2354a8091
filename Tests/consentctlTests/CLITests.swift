import Foundation
import Testing

/// Runs the built `consentctl` binary as a user would and checks exit codes and output.
enum CLI {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binary: URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("consentctl")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory.deleteLastPathComponent()
        }
        return repository.appendingPathComponent(".build/debug/consentctl")
    }

    /// The `consentd` built beside `consentctl`.
    static var consentd: String { binary.deletingLastPathComponent().appendingPathComponent("consentd").path }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ arguments: [String], in directory: URL = repository, executable: String? = nil) throws -> Output {
        let process = Process()
        process.executableURL = executable.map { URL(fileURLWithPath: $0) } ?? binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }

    static let fixtures = repository.appendingPathComponent("Tests/PolicyEngineTests/Fixtures")
}

@Suite struct PolicyCommandTests {
    @Test func lintOfTheShippedPoliciesExitsZero() throws {
        let output = try CLI.run(["policy", "lint", "Policies"])
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
        #expect(output.stdout.contains("no problems"))
    }

    @Test func lintOfABrokenSetExitsOneWithFileLineColumnLines() throws {
        let output = try CLI.run(["policy", "lint", CLI.fixtures.appendingPathComponent("lint/rules").path])
        #expect(output.status == 1)
        let first = output.stdout.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.range(of: #"^[a-z]+\.yaml:\d+:\d+: (error|warning): "#, options: .regularExpression) != nil, "\(first)")
        #expect(output.stdout.contains("a.yaml:7:16: error: purpose 'ads.targetted' is not in the taxonomy [unknown-purpose]"))
    }

    @Test func lintWarningsPassUnlessStrict() throws {
        let directory = CLI.fixtures.appendingPathComponent("lint/warnings").path
        #expect(try CLI.run(["policy", "lint", directory]).status == 0)
        #expect(try CLI.run(["policy", "lint", "--strict", directory]).status == 1)
    }

    @Test func lintJSONIsMachineReadable() throws {
        let output = try CLI.run(["policy", "lint", "--format", "json", CLI.fixtures.appendingPathComponent("lint/rules").path])
        let decoded = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]]
        #expect((decoded?.count ?? 0) > 5)
        #expect(decoded?.first?["line"] is Int)
    }

    @Test func aMissingDirectoryExits66() throws {
        let output = try CLI.run(["policy", "lint", "/nonexistent/policies"])
        #expect(output.status == 66)
        #expect(output.stderr.contains("no such directory"))
    }

    @Test func testOfTheShippedPoliciesPassesAndEndsWithTheSummaryLine() throws {
        let output = try CLI.run(["policy", "test", "Policies"])
        #expect(output.status == 0, "\(output.stdout)")
        let last = output.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.range(of: #"^\d+ passed, 0 failed$"#, options: .regularExpression) != nil, "\(last)")
    }

    @Test func aFailingCaseExitsOneAndShowsBothSides() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("consentctl-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: CLI.repository.appendingPathComponent("Policies"), to: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        let suite = directory.appendingPathComponent("service_test.yaml")
        let text = try String(contentsOf: suite, encoding: .utf8)
        try text.replacingOccurrences(of: "rule: legal-compliance}", with: "rule: essential-service}").write(to: suite, atomically: true, encoding: .utf8)
        let output = try CLI.run(["policy", "test", directory.path])
        #expect(output.status == 1)
        #expect(output.stdout.contains("expected: allow LEGAL_BASIS by essential-service"))
        #expect(output.stdout.contains("decided:  allow LEGAL_BASIS by legal-compliance (service.yaml:"))
        #expect(output.stdout.hasSuffix(" passed, 1 failed\n"))
    }

    @Test func explainShowsTheDecisionAndTheTrace() throws {
        let output = try CLI.run(["policy", "explain", "Policies", "--subject", "s", "--purpose", "service.essential", "--data", "user.contact.email", "--jurisdiction", "FR", "--at", "2026-06-01T00:00:00Z"])
        #expect(output.status == 0)
        #expect(output.stdout.hasPrefix("decision: allow (LEGAL_BASIS)\nrule: essential-service at service.yaml:"))
        #expect(output.stdout.contains("legal basis: contract"))
        #expect(output.stdout.contains("no-health-for-marketing (prohibition, prohibitions.yaml:9:5): not applicable: purpose not covered"))
    }

    @Test func explainReadsAConsentFileAndSpeaksJSON() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("consent-\(UUID().uuidString).yaml")
        try "- {subject: s, purpose: marketing, choice: deny, at: 2026-01-01T00:00:00Z, source: web}\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let output = try CLI.run(["policy", "explain", "Policies", "--subject", "s", "--purpose", "marketing.advertising.targeted", "--data", "user.behavior", "--jurisdiction", "DE", "--consent", file.path, "--format", "json"])
        #expect(output.status == 0, "\(output.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]
        #expect(json?["decision"] as? String == "deny")
        #expect(json?["reason"] as? String == "CONSENT_DENIED")
        #expect(json?["rule"] as? String == "eea-targeted-ads")
        #expect((json?["records"] as? [[String: Any]])?.first?["effective"] as? Bool == true)
    }

    @Test func explainRejectsABadInstant() throws {
        let output = try CLI.run(["policy", "explain", "Policies", "--subject", "s", "--purpose", "p", "--data", "d", "--at", "tomorrow"])
        #expect(output.status == 64)
        #expect(output.stderr.contains("not an RFC 3339 time"))
    }

    @Test func schemaIsValidJSONAndMatchesTheCommittedFile() throws {
        let output = try CLI.run(["policy", "schema"])
        #expect(output.status == 0)
        let schema = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]
        #expect(schema?["$schema"] as? String == "https://json-schema.org/draft/2020-12/schema")
        let committed = try String(contentsOf: CLI.repository.appendingPathComponent("schema/consentd-v1.schema.json"), encoding: .utf8)
        #expect(output.stdout == committed, "regenerate with: swift run consentctl policy schema > schema/consentd-v1.schema.json")
    }

    @Test func helpExplainsEachCommand() throws {
        let output = try CLI.run(["policy", "test", "--help"])
        #expect(output.status == 0)
        #expect(output.stdout.contains("N passed, M failed"))
    }
}

@Suite struct PolicyGenerateTests {
    @Test func generatedSetsCompileAndLintWithoutErrors() throws {
        let scratch = Scratch()
        let directory = scratch.path("generated")
        var output = try CLI.run(["policy", "generate", "--rules", "400", "--purposes", "80", "--data-categories", "30", "--seed", "9", "--out", directory])
        #expect(output.status == 0, "\(output.stderr)")
        output = try CLI.run(["policy", "lint", directory])
        #expect(output.status == 0, "\(output.stdout)")
        let again = scratch.path("again")
        _ = try CLI.run(["policy", "generate", "--rules", "400", "--purposes", "80", "--data-categories", "30", "--seed", "9", "--out", again])
        #expect(try String(contentsOfFile: directory + "/rules.yaml", encoding: .utf8) == (try String(contentsOfFile: again + "/rules.yaml", encoding: .utf8)))
    }
}
