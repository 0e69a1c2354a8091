import ArgumentParser
import ConsentModel
import PolicyEngine

/// `consentctl policy test DIR`
struct PolicyTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run every *_test.yaml suite under a policy directory.",
        discussion: """
        Each case gives a request and the expected decision (and optionally reason, rule and \
        obligations). Prints every failure with what was expected and what was decided, then a \
        line `N passed, M failed`. Exits 1 when any case fails, a suite cannot be read, or the \
        policy set does not compile.
        """
    )

    @Argument(help: "The policy directory.")
    var directory: String = "Policies"

    @Flag(name: .shortAndLong, help: "Also list passing cases and rules no case decided.")
    var verbose = false

    func run() throws {
        let loaded = try LoadedPolicies.load(directory, vocabulary: Vocabulary())
        guard let policySet = loaded.result.policySet else {
            print(loaded.result.diagnostics.text)
            print("the policy set does not compile; no tests ran")
            print("0 passed, \(max(1, loaded.tests.count)) failed")
            throw ExitCode(1)
        }
        if loaded.tests.isEmpty {
            printError("consentctl: no *_test.yaml suites under \(directory)")
        }
        let report = PolicyTestRunner.run(loaded.tests, against: policySet)
        for diagnostic in report.diagnostics { print(diagnostic) }
        for failure in report.failures { print(failure.text) }
        if verbose {
            print("\(loaded.tests.count) suites, policy revision \(policySet.revision)")
            let unexercised = policySet.rules.map(\.id).filter { !report.decidingRules.contains($0) }
            if !unexercised.isEmpty { print("rules that decided no case: \(unexercised.joined(separator: ", "))") }
        }
        print(report.summary)
        if !report.succeeded { throw ExitCode(1) }
    }
}
