import ArgumentParser
import ConsentModel

#if canImport(Glibc)
import Glibc
#endif

/// `consentctl`: the command-line tool for consentd's policies (and, as the daemon arrives, its consent store and socket).
@main
struct Consentctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consentctl",
        abstract: "Work with consentd policy sets and consent stores.",
        discussion: """
        `check` and `status` talk to a running consentd over its socket; `consent` works on the \
        store file (or, with --socket, through the daemon); `policy` works on a policy directory \
        (every *.yaml file under it; *_test.yaml files are its test suites); `signals` decodes \
        TCF, GPP and US Privacy strings. Exit status: 0 on \
        success, 1 when the check failed (lint errors, failed tests, a refused request), 64 for \
        a usage error, 66 when an input cannot be read, 69 when the daemon cannot be reached, \
        74 when the store cannot be opened, 77 when the daemon denies permission.
        """,
        version: "0.1.0",
        subcommands: [CheckCommand.self, StatusCommand.self, BenchCommand.self, ConsentCommand.self, PolicyCommand.self, ReceiptsCommand.self, SignalsCommand.self]
    )

    /// Parses the arguments as given: one that is not UTF-8 is refused (exit 64), never
    /// repaired into another customer's id.
    static func main() {
        do {
            main(try CommandLineText.arguments())
        } catch {
            printError("Error: \(error)")
            Glibc.exit(64)
        }
    }
}


/// `consentctl policy …`
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Lint, test and explain policy sets; print the policy JSON Schema.",
        subcommands: [PolicyLint.self, PolicyTest.self, PolicyExplain.self, PolicySchemaCommand.self, PolicyGenerate.self]
    )
}
