import ArgumentParser
import ConsentClient
import ConsentModel
import ConsentStore
import PolicyEngine

/// `--store` and `--policies`, shared by every consent subcommand.
struct StoreOptions: ParsableArguments {
    @Option(help: "The consent store file (SQLite).")
    var store = "consentd.sqlite"

    @Option(help: ArgumentHelp("Reject purposes and data categories this policy directory's taxonomy does not declare (default: ./Policies when it exists).", valueName: "dir"))
    var policies: String?

    @Flag(help: "Do not check keys against a taxonomy.")
    var noTaxonomyCheck = false

    @Option(help: ArgumentHelp("Go through the running daemon on this socket instead of opening the store file (grant, deny, withdraw, history, erase, import); the daemon checks keys against its own policies too.", valueName: "path"))
    var socket: String?

    /// A client when --socket was given.
    func client() throws -> ConsentClient? {
        guard let socket else { return nil }
        return try SocketOptions.parse(["--socket", socket]).connect()
    }

    func open() throws -> SQLiteConsentStore {
        do {
            return try SQLiteConsentStore(path: store)
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
        let purposes = set.purposes
        let data = set.dataCategories
        return { record in
            if !purposes.contains(record.purpose) {
                return "purpose '\(record.purpose)' is not in the taxonomy of \(directory)" + (suggestion(record.purpose, purposes.keys).map { "; did you mean '\($0)'?" } ?? "")
            }
            if let category = record.dataCategory, !data.contains(category) {
                return "data category '\(category)' is not in the taxonomy of \(directory)" + (suggestion(category, data.keys).map { "; did you mean '\($0)'?" } ?? "")
            }
            return nil
        }
    }
}

/// The closest key by shared prefix segments and length, for hints.
func suggestion(_ key: String, _ candidates: [String]) -> String? {
    let parts = key.split(separator: ".")
    var best: (String, Int)?
    for candidate in candidates {
        let other = candidate.split(separator: ".")
        var shared = 0
        while shared < min(parts.count, other.count), parts[shared] == other[shared] { shared += 1 }
        let score = shared * 10 - abs(other.count - parts.count) - abs(candidate.count - key.count)
        if shared > 0 || candidate.count > 3 && key.hasPrefix(String(candidate.prefix(3))), best == nil || score > best!.1 { best = (candidate, score) }
    }
    return best?.0
}
