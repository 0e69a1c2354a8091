import ConsentReceipts

/// One setting of the daemon, as it is spelt everywhere: `--name VALUE` on the command line,
/// `name: value` in the `--config` file, and one row of the README's option table. The table
/// below is the only list of them: consentd parses its arguments and its file from it, prints
/// its help from it, and a test checks the README's table against it.
public struct ConfigurationOption: Sendable {
    /// What an option takes.
    public enum Kind: Sendable, Equatable {
        /// Free text (a path, an address).
        case text
        /// A whole number.
        case integer
        /// A number (seconds, a fraction).
        case number
        /// Octal permission bits like 660.
        case octal
        /// One of the listed words.
        case choice([String])
        /// A numeric user or group id; repeatable on the command line, a list in the file.
        case ids
        /// On or off: `--name` alone on the command line, `true`/`false` in the file.
        case flag
    }

    /// A parsed value.
    public enum Value: Sendable {
        case text(String)
        case integer(Int)
        case number(Double)
        case ids([UInt32])
        case flag(Bool)
    }

    /// The option's one spelling (`max-frame-size`).
    public let name: String
    /// How help names the value (`BYTES`).
    public let valueName: String
    public let kind: Kind
    /// What it does, one sentence.
    public let help: String
    let apply: @Sendable (inout ServerConfiguration, Value) -> Void
    let current: @Sendable (ServerConfiguration) -> String

    /// The value in force in `configuration`, as the help and README show defaults.
    public func value(in configuration: ServerConfiguration) -> String { current(configuration) }

    /// Sets this option in `configuration` from its text (a command-line argument or a scalar of
    /// the file); the error says what was expected.
    public func set(_ text: String, in configuration: inout ServerConfiguration) throws(ConfigurationOptionError) {
        // A control character (a NUL above all: the path would end there at the C boundary) has
        // no place in any value.
        if let control = text.unicodeScalars.first(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) {
            let hex = String(control.value, radix: 16, uppercase: true)
            throw fail("the value contains a control character (U+\(String(repeating: "0", count: 4 - hex.count) + hex))")
        }
        switch kind {
        case .text:
            apply(&configuration, .text(text))
        case .integer:
            guard let number = Int(text) else { throw fail("expected a whole number, not '\(text)'") }
            apply(&configuration, .integer(number))
        case .number:
            // Decimal only: Double("0x10") would read hexadecimal.
            guard text.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }), let number = Double(text), number.isFinite else {
                throw fail("expected a decimal number, not '\(text)'")
            }
            // 1e-400 reads as 0, which for a timeout means "never": the opposite of what was asked.
            let mantissa = text.prefix { $0 != "e" && $0 != "E" }
            guard number != 0 || !mantissa.contains(where: { ("1"..."9").contains($0) }) else {
                throw fail("'\(text)' is too small to be kept (it would read as 0)")
            }
            apply(&configuration, .number(number))
        case .octal:
            guard !text.isEmpty, text.allSatisfy({ ("0"..."7").contains($0) }), let bits = UInt16(text, radix: 8), bits <= 0o777 else {
                throw fail("'\(text)' is not an octal permission like 660")
            }
            apply(&configuration, .integer(Int(bits)))
        case let .choice(words):
            guard words.contains(text) else { throw fail("'\(text)' is not \(Self.either(words))") }
            apply(&configuration, .text(text))
        case .ids:
            try set(ids: [text], in: &configuration)
        case .flag:
            switch text {
            case "true": apply(&configuration, .flag(true))
            case "false": apply(&configuration, .flag(false))
            default: throw fail("expected true or false, not '\(text)'")
            }
        }
    }

    /// Sets an `ids` option from its values (replacing any set before).
    public func set(ids texts: [String], in configuration: inout ServerConfiguration) throws(ConfigurationOptionError) {
        var ids: [UInt32] = []
        for text in texts {
            guard let id = UInt32(text) else { throw fail("'\(text)' is not a numeric id (0 to 4294967295)") }
            ids.append(id)
        }
        apply(&configuration, .ids(ids))
    }

    private func fail(_ message: String) -> ConfigurationOptionError { ConfigurationOptionError(option: name, message: message) }

    static func either(_ words: [String]) -> String {
        words.count <= 1 ? words.joined() : words.dropLast().joined(separator: ", ") + " or " + words.last!
    }
}

/// An option given a value it cannot take.
public struct ConfigurationOptionError: Error, CustomStringConvertible, Sendable {
    public let option: String
    public let message: String
    public var description: String { "\(option): \(message)" }

    public init(option: String, message: String) {
        self.option = option
        self.message = message
    }
}

extension ConfigurationOption {
    /// Every option the daemon takes, in the order help and the README list them.
    public static let all: [ConfigurationOption] = [
        text("policies", "DIR", "Policy directory (`*.yaml`, recursively).", \.policies),
        text("store", "STORE", "Consent store: an SQLite file (created if missing), or a PostgreSQL URI (postgres://USER@HOST:PORT/DB or postgresql:///DB?host=/socket/dir; the schema is created if missing).", \.store),
        text("socket", "PATH", "Unix socket path.", \.socket),
        octal("socket-mode", "Socket file permissions, octal.", \.socketMode),
        octal("file-mode", "Permission bits of the store (with its WAL and SHM) and of receipt files: 600, 640 or 660.", \.fileMode),
        integer("max-frame-size", "BYTES", "Largest request frame.", \.maximumFrameSize),
        integer("max-connections", "N", "Most connections at once; more are refused with RESOURCE_EXHAUSTED.", \.maximumConnections),
        integer("max-connections-per-uid", "N", "Most connections one uid may hold at once; 0 = three quarters of max-connections.", \.maximumConnectionsPerUID),
        integer("max-pending-output", "BYTES", "Bytes of answers a connection may have waiting for its peer before the daemon stops reading from it.", \.maximumPendingOutput),
        integer("max-in-flight", "N", "Most requests in flight per connection before reading pauses.", \.maximumInFlight),
        integer("max-batch-items", "N", "Most items in one CheckBatch (a RecordConsent holds at most 10000 records, a fixed limit).", \.maximumBatchItems),
        number("max-clock-skew", "SECONDS", "How far in the future a record's recorded_at may lie.", \.maximumClockSkew),
        number("idle-timeout", "SECONDS", "Close connections idle this long; 0 = never.", \.idleTimeout),
        number("frame-timeout", "SECONDS", "Close a connection whose frame has not arrived whole this long after its first byte; 0 = never.", \.frameTimeout),
        integer("event-loops", "N", "Event loop threads; 0 = one per core.", \.eventLoops),
        number("policy-poll-interval", "SECONDS", "Seconds between checks of the policy directory; 0 = only on SIGHUP.", \.policyPollInterval),
        number("store-poll-interval", "SECONDS", "Seconds between checks for other processes' consent writes; 0: 0.01 for SQLite, 1 for PostgreSQL (woken by NOTIFY, the poll is a heartbeat).", \.storePollInterval),
        number("max-staleness", "SECONDS", "Deny decisions that need consent (CONSENT_UNAVAILABLE) while no look at the store has confirmed the index current for this long.", \.maximumStaleness),
        number("max-sequence-wait", "SECONDS", "How long a decision naming a min_sequence this daemon has not applied waits for it; then decisions that need consent are denied CONSENT_UNAVAILABLE.", \.maximumSequenceWait),
        ids("admin-uid", "A user id that may administer consent (RecordConsent, History, EraseSubject) besides the daemon's own and root.", \.adminUIDs),
        ids("admin-gid", "A group id whose members (by primary group) may administer consent.", \.adminGIDs),
        ids("check-uid", "A user id that may check (Check, CheckBatch, ListUses, Status); given any check-uid or check-gid, other non-admins may not.", \.checkUIDs),
        ids("check-gid", "A group id whose members (by primary group) may check.", \.checkGIDs),
        flag("allow-any-admin", "Let every peer administer consent (single-user machines and tests only).", \.allowAnyAdmin),
        ConfigurationOption(
            name: "receipts", valueName: "DIR", kind: .text, help: "Write decision receipts to this directory (off by default).",
            apply: { if case let .text(text) = $1 { $0.receipts.directory = text } }, current: { $0.receipts.directory ?? "off" }
        ),
        number("receipt-sample-rate", "FRACTION", "Fraction of decisions that get a receipt, in (0, 1].", \.receipts.sampleRate),
        choice("receipt-subject", "How receipts name the subject: hash (keyed with the store's erasure key, so an erased subject is unlinkable), raw or omit.", \.receipts.subject),
        choice("receipt-when-full", "When the receipt queue is full: drop (count and mark the gap) or block (stop reading requests).", \.receipts.whenFull),
        integer("receipt-queue", "N", "Receipts the queue holds.", \.receipts.queueCapacity),
        integer("receipt-queue-bytes", "BYTES", "Bytes the receipt queue holds at most.", \.receipts.queueBytes),
        integer("receipt-file-size", "BYTES", "Start a new receipts file past this many bytes; closed files are compressed (gzip).", \.receipts.maximumFileSize),
        integer("receipt-retention-bytes", "BYTES", "Keep the receipts files within this many bytes, retiring the oldest (recorded in the store, so replay reports them as retired); 0 = no budget.", \.receipts.retentionBytes),
        number("receipt-retention-days", "DAYS", "Retire closed receipts files last written longer ago than this; 0 = keep for ever.", \.receipts.retentionDays),
        integer("receipt-min-free-bytes", "BYTES", "Stop writing receipts (counted as dropped and marked in the files) while the receipts file system has less free space than this.", \.receipts.minimumFreeBytes),
        ConfigurationOption(
            name: "metrics", valueName: "HOST:PORT", kind: .text, help: "Serve Prometheus metrics over HTTP on this address (off by default).",
            apply: { if case let .text(text) = $1 { $0.metricsAddress = text } }, current: { $0.metricsAddress ?? "off" }
        ),
    ]

    /// The option named `name`, if there is one.
    public static func named(_ name: String) -> ConfigurationOption? { all.first { $0.name == name } }

    // The rows above, each from the field it sets: the setter and the default cannot disagree
    // about which field an option is.

    private static func text(_ name: String, _ valueName: String, _ help: String, _ field: WritableKeyPath<ServerConfiguration, String> & Sendable) -> ConfigurationOption {
        ConfigurationOption(name: name, valueName: valueName, kind: .text, help: help,
                            apply: { if case let .text(text) = $1 { $0[keyPath: field] = text } }, current: { $0[keyPath: field] })
    }

    private static func integer(_ name: String, _ valueName: String, _ help: String, _ field: WritableKeyPath<ServerConfiguration, Int> & Sendable) -> ConfigurationOption {
        ConfigurationOption(name: name, valueName: valueName, kind: .integer, help: help,
                            apply: { if case let .integer(number) = $1 { $0[keyPath: field] = number } }, current: { String($0[keyPath: field]) })
    }

    private static func number(_ name: String, _ valueName: String, _ help: String, _ field: WritableKeyPath<ServerConfiguration, Double> & Sendable) -> ConfigurationOption {
        ConfigurationOption(name: name, valueName: valueName, kind: .number, help: help,
                            apply: { if case let .number(number) = $1 { $0[keyPath: field] = number } }, current: { format($0[keyPath: field]) })
    }

    private static func octal(_ name: String, _ help: String, _ field: WritableKeyPath<ServerConfiguration, UInt16> & Sendable) -> ConfigurationOption {
        ConfigurationOption(name: name, valueName: "MODE", kind: .octal, help: help,
                            apply: { if case let .integer(bits) = $1 { $0[keyPath: field] = UInt16(bits) } }, current: { String($0[keyPath: field], radix: 8) })
    }

    private static func ids(_ name: String, _ help: String, _ field: WritableKeyPath<ServerConfiguration, [UInt32]> & Sendable) -> ConfigurationOption {
        ConfigurationOption(name: name, valueName: "ID", kind: .ids, help: help,
                            apply: { if case let .ids(ids) = $1 { $0[keyPath: field] = ids } },
                            current: { $0[keyPath: field].isEmpty ? "none" : $0[keyPath: field].map(String.init).joined(separator: ",") })
    }

    private static func flag(_ name: String, _ help: String, _ field: WritableKeyPath<ServerConfiguration, Bool> & Sendable) -> ConfigurationOption {
        ConfigurationOption(name: name, valueName: "", kind: .flag, help: help,
                            apply: { if case let .flag(on) = $1 { $0[keyPath: field] = on } }, current: { $0[keyPath: field] ? "on" : "off" })
    }

    private static func choice<Word: RawRepresentable & CaseIterable & Sendable>(
        _ name: String, _ help: String, _ field: WritableKeyPath<ServerConfiguration, Word> & Sendable
    ) -> ConfigurationOption where Word.RawValue == String {
        ConfigurationOption(name: name, valueName: "WORD", kind: .choice(Word.allCases.map(\.rawValue)), help: help,
                            apply: { if case let .text(text) = $1, let word = Word(rawValue: text) { $0[keyPath: field] = word } },
                            current: { $0[keyPath: field].rawValue })
    }

    /// A number as help shows it: `300`, `0.5`.
    static func format(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }
}

extension ConfigurationOption {
    /// The README's option table, rendered from `all` (a test holds the README to it).
    public static func markdownTable() -> String {
        let defaults = ServerConfiguration()
        var lines = ["| option (`--name` / file key `name:`) | value | default | what it does |", "|---|---|---|---|"]
        for option in all {
            let value: String
            switch option.kind {
            case .flag: value = "flag (`true`/`false` in the file)"
            case .ids: value = "id, repeatable (a list in the file)"
            case let .choice(words): value = words.map { "`\($0)`" }.joined(separator: " / ")
            default: value = option.valueName
            }
            let help = option.help.replacingOccurrences(of: "|", with: "\\|")
            lines.append("| `\(option.name)` | \(value) | `\(option.value(in: defaults))` | \(help) |")
        }
        return lines.joined(separator: "\n")
    }
}
