import ArgumentParser
import ConsentModel
import Foundation
import PolicyEngine

/// `consentctl policy lint DIR`
struct PolicyLint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lint",
        abstract: "Check a policy set and print every problem as FILE:LINE:COL: error|warning: message.",
        discussion: """
        Checks YAML syntax, apiVersion and kind, unknown keys, undeclared taxonomy keys and parents, \
        duplicate rule ids, bad durations, more than one default, permissions shadowed by a \
        prohibition, and permissions over the same scope with different requirements. Test suites \
        (*_test.yaml) are parsed too. Exits 0 when there are no errors (warnings allowed unless \
        --strict), 1 otherwise.
        """
    )

    @Argument(help: "The policy directory.")
    var directory: String = "Policies"

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    @Flag(help: "Treat warnings as errors.")
    var strict = false

    func run() throws {
        let loaded = try LoadedPolicies.load(directory, vocabulary: Vocabulary())
        var diagnostics = loaded.result.diagnostics
        for suite in loaded.tests {
            let (document, suiteDiagnostics) = PolicyParser.parse(suite.text, file: suite.path)
            diagnostics += suiteDiagnostics
            if let document, case .test = document {} else if document != nil {
                diagnostics.append(Diagnostic(.error, "not-a-test", at: SourceLocation(file: suite.path, line: 1, column: 1), "a *_test.yaml file must have `kind: PolicyTest`", hint: "rename the file if it is part of the policy set"))
            }
        }
        diagnostics = diagnostics.sortedForOutput()
        switch format {
        case .text:
            if diagnostics.isEmpty {
                print("\(directory): \(loaded.policies.count) files, \(loaded.result.policySet?.rules.count ?? 0) rules, revision \(loaded.result.policySet?.revision ?? "-"): no problems")
            } else {
                print(diagnostics.text)
            }
        case .json:
            print(JSONOutput.encode(diagnostics.map(DiagnosticJSON.init)))
        }
        let failed = diagnostics.hasErrors || (strict && !diagnostics.isEmpty)
        if failed { throw ExitCode(1) }
    }
}

struct DiagnosticJSON: Encodable {
    let file: String
    let line: Int
    let column: Int
    let severity: String
    let code: String
    let message: String
    let hint: String?

    init(_ diagnostic: Diagnostic) {
        file = diagnostic.location.file
        line = diagnostic.location.line
        column = diagnostic.location.column
        severity = diagnostic.severity.rawValue
        code = diagnostic.code
        message = diagnostic.message
        hint = diagnostic.hint
    }
}

enum JSONOutput {
    static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
    }
}
