import ConsentModel
import ConsentServer
import Foundation
import Logging
import PolicyEngine
import Yams

/// `consentd`: the consent-aware policy decision point.
///
/// Its options are the rows of `ConfigurationOption.all`: the command line, the `--config` file
/// and the help are all read from that one table (which is why this entry point parses its own
/// arguments instead of declaring them a second time as ArgumentParser properties).
@main
enum Consentd {
    static let about = """
    consentd — the consent-aware policy decision point: answers Check over a Unix socket.

    Usage: consentd [--OPTION VALUE | --OPTION=VALUE | --FLAG | --FLAG=true|false]... [--config FILE] [--log-level LEVEL]
           consentd --help | --version

    With no options it serves ./Policies and ./consentd.sqlite on ./consentd.sock. Every option \
    can also be set in a YAML file given with --config, under the same name (`max-connections: \
    512`; a repeatable id option takes a list: `admin-uid: [1001, 1002]`); the command line wins \
    over the file.

    Signals: SIGTERM or SIGINT stops accepting connections, answers every request already read, \
    removes the socket and exits 0. SIGHUP reloads the policies now (they are also reloaded when a \
    file changes). A reload that does not compile is reported in the log and in `consentctl \
    status`, and the last good policy set keeps serving.

    Who may do what (peer credentials via SO_PEERCRED): the daemon's own user and root may do \
    everything, and so may --admin-uid users and members of --admin-gid groups (the peer's primary \
    group). The check role (Check, CheckBatch, ListUses, Status) is open to anyone who can open the \
    socket (see --socket-mode) unless --check-uid or --check-gid are given; then only those peers \
    and administrators may check. A refused call is answered PERMISSION_DENIED and counted.

    Receipts: with --receipts DIR, every decision (or --receipt-sample-rate of them) is appended to \
    DIR/receipts-NNNNNN.jsonl by a background writer; the policy sources of each revision are kept \
    in DIR/policies/<revision>, so `consentctl receipts replay DIR` can re-decide every receipt. The \
    hot path never waits on the disk: receipts go through a bounded queue (--receipt-queue); when it \
    is full, `drop` loses receipts (counted, reported by status and metrics, and marked as a gap in \
    the file) and `block` stops reading requests until the writer catches up. SIGTERM writes \
    everything queued first.

    Metrics: --metrics 127.0.0.1:9464 serves Prometheus text at http://127.0.0.1:9464/metrics.
    """

    /// Options of this program only (not daemon settings, so not in the file or the table).
    static let programOptions: [(name: String, valueName: String, help: String)] = [
        ("config", "FILE", "YAML configuration file (keys as the option names)."),
        ("log-level", "LEVEL", "trace, debug, info, notice, warning, error or critical (default info)."),
        ("help", "", "Show this help."),
        ("version", "", "Show the version."),
    ]

    static func main() async {
        do {
            let arguments: [String]
            do { arguments = try CommandLineText.arguments() } catch { throw UsageError(message: error.description) }
            try await run(arguments)
        } catch let error as UsageError {
            FileHandle.standardError.write(Data("consentd: \(error.message)\n".utf8))
            exit(64)
        } catch {
            FileHandle.standardError.write(Data("consentd: \(error)\n".utf8))
            exit(1)
        }
    }

    struct UsageError: Error {
        let message: String
    }

    /// What the command line asked for.
    struct Arguments {
        var values: [(option: ConfigurationOption, texts: [String])] = []
        var config: String?
        var logLevel = "info"
        var help = false
        var version = false
    }

    static func run(_ argv: [String]) async throws {
        let arguments = try parse(argv)
        if arguments.help {
            print(help())
            return
        }
        if arguments.version {
            print(ConsentDaemon.version)
            return
        }
        guard let level = Logger.Level(rawValue: arguments.logLevel) else {
            throw UsageError(message: "log-level: '\(arguments.logLevel)' is not trace, debug, info, notice, warning, error or critical")
        }
        let configuration = try makeConfiguration(arguments)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        // SIGHUP's default action ends the process, and the reloader traps it only once it runs,
        // after the socket is bound: an operator's (or a supervisor's) SIGHUP in between would
        // kill a daemon that was starting. Ignore it from here until the reloader's trap replaces
        // this (a SIGHUP in that window is dropped; with polling on, the watch still compares the
        // directory with what was loaded at start, so an edit made meanwhile is picked up).
        signal(SIGHUP, SIG_IGN)
        let daemon = try ConsentDaemon(configuration: configuration, logger: Logger(label: "consentd"))
        try await daemon.run()
    }

    /// Reads `--name value`, `--name=value` and bare flags, each name from the table.
    static func parse(_ argv: [String]) throws -> Arguments {
        var arguments = Arguments()
        var index = 0
        while index < argv.count {
            let word = argv[index]
            index += 1
            guard word.hasPrefix("--"), word.count > 2 else {
                throw UsageError(message: "unexpected argument '\(word)' (options start with --; see --help)")
            }
            var name = String(word.dropFirst(2))
            var inline: String?
            if let equals = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            func value() throws -> String {
                if let inline { return inline }
                guard index < argv.count else { throw UsageError(message: "--\(name) needs a value (see --help)") }
                let next = argv[index]
                // `--socket --allow-any-admin` forgot the value: refuse rather than take an
                // option's name for a path (`--socket=--allow-any-admin` means it).
                if next.hasPrefix("--"), isOptionName(String(next.dropFirst(2).prefix { $0 != "=" })) {
                    throw UsageError(message: "--\(name) needs a value, and '\(next)' is an option (write --\(name)=\(next) if that is the value)")
                }
                index += 1
                return next
            }
            func noValue() throws {
                if inline != nil { throw UsageError(message: "--\(name) takes no value") }
            }
            switch name {
            case "help":
                try noValue()
                arguments.help = true
            case "version":
                try noValue()
                arguments.version = true
            case "config": arguments.config = try value()
            case "log-level": arguments.logLevel = try value()
            default:
                guard let option = ConfigurationOption.named(name) else {
                    let names = ConfigurationOption.all.map(\.name) + programOptions.map(\.name)
                    throw UsageError(message: "unknown option '--\(name)'" + (Suggest.closest(to: name, in: names).map { "; did you mean '--\($0)'?" } ?? "") + " (see --help)")
                }
                let text: String
                if option.kind == .flag {
                    text = inline ?? "true"
                } else {
                    text = try value()
                }
                if option.kind == .ids, let at = arguments.values.firstIndex(where: { $0.option.name == option.name }) {
                    arguments.values[at].texts.append(text)  // repeatable: the ids accumulate
                } else {
                    arguments.values.removeAll { $0.option.name == option.name }  // the last one given wins
                    arguments.values.append((option, [text]))
                }
            }
        }
        return arguments
    }

    /// Whether `name` is one of consentd's options.
    static func isOptionName(_ name: String) -> Bool {
        ConfigurationOption.named(name) != nil || programOptions.contains { $0.name == name }
    }

    /// The defaults, then the file, then the command line; validated as a whole.
    static func makeConfiguration(_ arguments: Arguments) throws -> ServerConfiguration {
        var configuration = ServerConfiguration()
        if let path = arguments.config {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw UsageError(message: "cannot read configuration file \(path)")
            }
            guard let text = String(validating: data, as: UTF8.self) else {
                throw UsageError(message: "configuration file \(path) is not valid UTF-8")
            }
            try apply(file: text, path: path, to: &configuration)
        }
        do {
            for (option, texts) in arguments.values {
                if option.kind == .ids {
                    try option.set(ids: texts, in: &configuration)
                } else {
                    try option.set(texts[0], in: &configuration)
                }
            }
        } catch {
            throw UsageError(message: error.description)
        }
        let problems = configuration.problems()
        if !problems.isEmpty { throw UsageError(message: "invalid configuration:\n  " + problems.joined(separator: "\n  ")) }
        return configuration
    }

    /// Applies a `--config` file: a YAML mapping of option names to values.
    static func apply(file text: String, path: String, to configuration: inout ServerConfiguration) throws {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw UsageError(message: "\(path): not valid YAML: \(error)")
        }
        guard let node else { return }
        guard case let .mapping(mapping) = node else { throw UsageError(message: "\(path): expected `key: value` lines") }
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            let line = keyNode.mark?.line ?? 0
            guard let option = ConfigurationOption.named(key) else {
                let names = ConfigurationOption.all.map(\.name)
                throw UsageError(message: "\(path):\(line): unknown key '\(key)'" + (Suggest.didYouMean(key, in: names).map { "; \($0)" } ?? "")
                    + "; known keys: \(names.joined(separator: ", "))")
            }
            do {
                if option.kind == .ids {
                    guard let list = value.sequence else { throw ConfigurationOptionError(option: key, message: "expected a list of numeric ids, like [1001]") }
                    try option.set(ids: list.map { try scalarText($0, key: key) }, in: &configuration)
                } else {
                    try option.set(try scalarText(value, key: key), in: &configuration)
                }
            } catch let error as ConfigurationOptionError {
                throw UsageError(message: "\(path):\(line): \(error.description)")
            }
        }
    }

    /// The text of a plain value of the file: a string, number or boolean. A null (`null`, `~`,
    /// or nothing) is refused rather than taken as its spelling (`receipts: null` would turn
    /// receipts on in a directory named `null`), and so is any other tag (`!!binary`).
    static func scalarText(_ node: Node, key: String) throws(ConfigurationOptionError) -> String {
        guard case let .scalar(scalar) = node else { throw ConfigurationOptionError(option: key, message: "expected a single value") }
        switch Tag.Name(rawValue: node.tag.rawValue) {
        case .str, .int, .float, .bool:
            return scalar.string
        case .null:
            throw ConfigurationOptionError(option: key, message: "a null value ('\(scalar.string)'); remove the key to keep the default")
        default:
            throw ConfigurationOptionError(option: key, message: "a value tagged \(node.tag.rawValue); write plain text")
        }
    }

    /// `--help`: the description, then every option from the table with its default.
    static func help() -> String {
        let defaults = ServerConfiguration()
        var lines = [about, "", "Options (default in brackets):"]
        for option in ConfigurationOption.all {
            let spelling = option.kind == .flag ? "--\(option.name)" : "--\(option.name) \(option.valueName)"
            let repeatable = option.kind == .ids ? " (repeatable)" : ""
            lines.append("  \(spelling)")
            lines.append("      \(option.help)\(repeatable) [\(option.value(in: defaults))]")
        }
        for option in programOptions {
            lines.append("  --\(option.name)\(option.valueName.isEmpty ? "" : " " + option.valueName)")
            lines.append("      \(option.help)")
        }
        return lines.joined(separator: "\n")
    }
}
