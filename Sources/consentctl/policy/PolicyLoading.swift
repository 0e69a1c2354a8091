import ArgumentParser
import ConsentModel
import PolicyEngine

/// Reads and compiles a policy directory for a command, turning I/O failures into exit code 66.
struct LoadedPolicies {
    let policies: [PolicySource]
    let tests: [PolicySource]
    let result: CompileResult

    static func load(_ directory: String, vocabulary: Vocabulary) throws -> LoadedPolicies {
        do {
            let loaded = try PolicyDirectory.compile(directory, vocabulary: vocabulary)
            return LoadedPolicies(policies: loaded.policies, tests: loaded.tests, result: loaded.result)
        } catch {
            printError("consentctl: \(error)")
            throw ExitCode(66)
        }
    }
}

extension Array where Element == Diagnostic {
    /// One diagnostic per line (hints indented under them), plus a count line.
    var text: String {
        var lines = map(\.description)
        let errors = filter { $0.severity == .error }.count
        let warnings = count - errors
        lines.append("\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
        return lines.joined(separator: "\n")
    }
}
