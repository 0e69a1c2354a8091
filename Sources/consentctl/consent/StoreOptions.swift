import ArgumentParser
import ConsentClient
import ConsentModel
import ConsentStore
import PolicyEngine

/// `--store` and `--policies`, shared by every consent subcommand.
struct StoreOptions: ParsableArguments {
    @Option(help: "The consent store: an SQLite file, or a PostgreSQL URI (postgres://USER@HOST:PORT/DB, postgresql:///DB?host=/socket/dir).")
    var store = "consentd.sqlite"

    @Option(help: ArgumentHelp("Reject purposes and data categories this policy directory's taxonomy does not declare (default: ./Policies when it exists).", valueName: "dir"))
    var policies: String?

    @Flag(help: "Do not check keys against a taxonomy.")
    var noTaxonomyCheck = false

    @Option(help: ArgumentHelp("Go through the running daemon on this socket instead of opening the store file (grant, deny, withdraw, history, erase, import); the daemon checks keys against its own policies too.", valueName: "path"))
    var socket: String?

    @Option(help: ArgumentHelp("With --socket: seconds to wait for the daemon's answer. A write waits for the store first (up to 5 s on PostgreSQL, more behind a busy SQLite file), so the default is well above that.", valueName: "seconds"))
    var timeout: Double = 30

    /// A client when --socket was given.
    func client() throws -> ConsentClient? {
        guard let socket else { return nil }
        guard timeout.isFinite, timeout > 0 else {
            printError("consentctl: --timeout must be a positive number of seconds")
            throw ExitCode(64)
        }
        return try SocketOptions.parse(["--socket", socket, "--timeout", String(timeout)]).connect()
    }

    func open() throws -> any ConsentStorage {
        do {
            return try ConsentStores.open(store)
        } catch {
            printError("consentctl: \(error)")
            throw ExitCode(74)
        }
    }

    /// A validator for records' keys, or nil when no taxonomy applies.
    func taxonomyCheck() throws -> (@Sendable (ConsentRecord) -> String?)? {
        if noTaxonomyCheck { return nil }
        let directory: String
        if let policies {
            directory = policies
        } else {
            guard (try? PolicyDirectory.read("Policies")) != nil else { return nil }
            directory = "Policies"
        }
        let loaded = try LoadedPolicies.load(directory, vocabulary: Vocabulary())
        guard let set = loaded.result.policySet else {
            printError("consentctl: the policies in \(directory) do not compile, so keys cannot be checked:\n\(loaded.result.diagnostics.text)")
            printError("(fix them, name another directory with --policies, or pass --no-taxonomy-check)")
            throw ExitCode(1)
        }
        return { record in set.keyProblem(purpose: record.purpose, dataCategory: record.dataCategory, taxonomy: "the taxonomy of \(directory)") }
    }
}
