import ArgumentParser

/// `consentctl`: the command-line tool for consentd's policies (and, as the daemon arrives, its consent store and socket).
@main
struct Consentctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consentctl",
        abstract: "Work with consentd policy sets and consent stores.",
        discussion: """
        A policy set is every *.yaml file under a directory (recursively); files named *_test.yaml \
        are its test suites. Exit status: 0 on success, 1 when the check failed (lint errors, failed \
        tests), 64 for a usage error, 66 when an input cannot be read.
        """,
        version: "0.1.0",
        subcommands: [PolicyCommand.self, ConsentCommand.self]
    )
}

/// `consentctl policy …`
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Lint, test and explain policy sets; print the policy JSON Schema.",
        subcommands: [PolicyLint.self, PolicyTest.self, PolicyExplain.self, PolicySchemaCommand.self]
    )
}
