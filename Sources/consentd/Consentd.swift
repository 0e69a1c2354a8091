import ArgumentParser
import ConsentReceipts
import ConsentServer
import Foundation
import Logging
import Yams

/// `consentd`: the consent-aware policy decision point.
@main
struct Consentd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consentd",
        abstract: "The consent-aware policy decision point: answers Check over a Unix socket.",
        discussion: """
        With no options it serves ./Policies and ./consentd.sqlite on ./consentd.sock. Every option \
        can also be set in a YAML file given with --config (keys as the option names without the \
        dashes, e.g. `max-connections: 512`); options on the command line win over the file.

        Signals: SIGTERM or SIGINT stops accepting connections, answers every request already \
        read, removes the socket and exits 0. SIGHUP reloads the policies now (they are also \
        reloaded when a file changes). A reload that does not compile is reported in the log \
        and in `consentctl status`, and the last good policy set keeps serving.

        Who may do what (peer credentials via SO_PEERCRED): the daemon's own user and root may do \
        everything, and so may --admin-uid users and members of --admin-gid groups (the peer's \
        primary group). The check role (Check, CheckBatch, ListUses, Status) is open to anyone who \
        can open the socket (see --socket-mode) unless --check-uid or --check-gid are given; then \
        only those peers and administrators may check. A refused call is answered \
        PERMISSION_DENIED and counted.

        Receipts: with --receipts DIR, every decision (or --receipt-sample-rate of them) is \
        appended to DIR/receipts-NNNNNN.jsonl by a background writer; the policy sources of each \
        revision are kept in DIR/policies/<revision>, so `consentctl receipts replay DIR` can \
        re-decide every receipt. The hot path never waits on the disk: receipts go through a \
        bounded queue (--receipt-queue); when it is full, `drop` loses receipts (counted, \
        reported by status and metrics, and marked as a gap in the file) and `block` stops \
        reading requests until the writer catches up. SIGTERM writes everything queued first.

        Metrics: --metrics 127.0.0.1:9464 serves Prometheus text at http://127.0.0.1:9464/metrics.
        """,
        version: ConsentDaemon.version
    )

    @Option(help: "Policy directory.") var policies: String?
    @Option(help: "Consent store file (SQLite; created if missing).") var store: String?
    @Option(help: "Unix socket path.") var socket: String?
    @Option(help: "Socket file permissions, octal.") var socketMode: String?
    @Option(help: "Largest request frame in bytes (default 1048576).") var maxFrameSize: Int?
    @Option(help: "Most connections at once (default 1024).") var maxConnections: Int?
    @Option(help: "Most connections one uid may hold at once; 0 = three quarters of --max-connections (default 0).") var maxConnectionsPerUid: Int?
    @Option(help: "Bytes of answers a connection may have waiting for its peer before the daemon stops reading from it (default 262144).") var maxPendingOutput: Int?
    @Option(help: "Permission bits of the store (with its WAL and SHM) and of receipt files, octal: 600, 640 or 660 (default 600).") var fileMode: String?
    @Option(help: "Seconds a record's recorded_at may lie in the future (default 300).") var maxClockSkew: Double?
    @Option(help: "Most requests in flight per connection before reading pauses (default 256).") var maxInFlight: Int?
    @Option(help: "Most items in one CheckBatch (default 10000).") var maxBatchItems: Int?
    @Option(help: "Close connections idle this many seconds; 0 = never (default 300).") var idleTimeout: Double?
    @Option(help: "Close a connection whose frame has not arrived whole this many seconds after its first byte; 0 = never (default 10).") var frameTimeout: Double?
    @Option(help: "Event loop threads; 0 = one per core (default 0).") var eventLoops: Int?
    @Option(help: "Seconds between checks of the policy directory; 0 = only on SIGHUP (default 0.5).") var policyPollInterval: Double?
    @Option(help: "Seconds between checks for other processes' consent writes (default 0.01).") var storePollInterval: Double?
    @Option(name: .customLong("admin-uid"), help: "A user id that may administer consent (repeatable).") var adminUIDs: [UInt32] = []
    @Option(name: .customLong("admin-gid"), help: "A group id whose members may administer consent (repeatable).") var adminGIDs: [UInt32] = []
    @Option(name: .customLong("check-uid"), help: "A user id that may check (repeatable; given any, other non-admins may not).") var checkUIDs: [UInt32] = []
    @Option(name: .customLong("check-gid"), help: "A group id whose members may check (repeatable).") var checkGIDs: [UInt32] = []
    @Flag(help: "Let every peer administer consent (single-user machines and tests only).") var allowAnyAdmin = false
    @Option(help: ArgumentHelp("Write decision receipts to this directory.", valueName: "dir")) var receipts: String?
    @Option(help: "Fraction of decisions that get a receipt, in (0, 1] (default 1).") var receiptSampleRate: Double?
    @Option(help: "How receipts name the subject: hash (keyed with the store's erasure key, so an erased subject is unlinkable), raw or omit (default hash).") var receiptSubject: String?
    @Option(help: "When the receipt queue is full: drop (count and mark the gap) or block (stop reading requests) (default drop).") var receiptWhenFull: String?
    @Option(help: "Receipts the queue holds (default 65536).") var receiptQueue: Int?
    @Option(help: "Bytes the receipt queue holds at most (default 67108864).") var receiptQueueBytes: Int?
    @Option(help: "Start a new receipts file past this many bytes (default 67108864).") var receiptFileSize: Int?
    @Option(help: ArgumentHelp("Serve Prometheus metrics over HTTP on this address.", valueName: "host:port")) var metrics: String?
    @Option(help: "YAML configuration file.") var config: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("unknown --log-level '\(logLevel)'")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "consentd")
        let configuration: ServerConfiguration
        do {
            configuration = try makeConfiguration()
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data("consentd: \(error.message)\n".utf8))
            throw ExitCode(64)
        }
        let daemon: ConsentDaemon
        do {
            daemon = try ConsentDaemon(configuration: configuration, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("consentd: \(error)\n".utf8))
            throw ExitCode(1)
        }
        do {
            try await daemon.run()
        } catch {
            FileHandle.standardError.write(Data("consentd: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    struct ConfigurationError: Error {
        let message: String
    }

    static let fileKeys = [
        "policies", "store", "socket", "socket-mode", "max-frame-size", "max-connections", "max-connections-per-uid", "max-pending-output",
        "file-mode", "max-clock-skew", "max-in-flight", "max-batch-items", "receipt-queue-bytes",
        "idle-timeout", "frame-timeout", "event-loops", "policy-poll-interval", "store-poll-interval", "admin-uids", "admin-gids", "check-uids",
        "check-gids", "allow-any-admin", "receipts", "receipt-sample-rate", "receipt-subject", "receipt-when-full", "receipt-queue",
        "receipt-file-size", "metrics",
    ]

    static func subjectMode(_ text: String) throws -> ReceiptConfiguration.SubjectMode {
        guard let mode = ReceiptConfiguration.SubjectMode(rawValue: text) else {
            throw ConfigurationError(message: "receipt-subject '\(text)' is not raw, hash or omit")
        }
        return mode
    }

    static func fullPolicy(_ text: String) throws -> ReceiptConfiguration.FullPolicy {
        guard let policy = ReceiptConfiguration.FullPolicy(rawValue: text) else {
            throw ConfigurationError(message: "receipt-when-full '\(text)' is not drop or block")
        }
        return policy
    }

    func makeConfiguration() throws -> ServerConfiguration {
        var configuration = ServerConfiguration()
        if let config {
            guard let text = try? String(contentsOfFile: config, encoding: .utf8) else {
                throw ConfigurationError(message: "cannot read configuration file \(config)")
            }
            try apply(file: text, path: config, to: &configuration)
        }
        if let policies { configuration.policies = policies }
        if let store { configuration.store = store }
        if let socket { configuration.socket = socket }
        if let socketMode { configuration.socketMode = try Self.mode(socketMode) }
        if let maxFrameSize { configuration.maximumFrameSize = maxFrameSize }
        if let maxConnections { configuration.maximumConnections = maxConnections }
        if let maxConnectionsPerUid { configuration.maximumConnectionsPerUID = maxConnectionsPerUid }
        if let maxPendingOutput { configuration.maximumPendingOutput = maxPendingOutput }
        if let fileMode { configuration.fileMode = try Self.mode(fileMode, key: "file-mode") }
        if let maxClockSkew { configuration.maximumClockSkew = maxClockSkew }
        if let receiptQueueBytes { configuration.receipts.queueBytes = receiptQueueBytes }
        if let maxInFlight { configuration.maximumInFlight = maxInFlight }
        if let maxBatchItems { configuration.maximumBatchItems = maxBatchItems }
        if let idleTimeout { configuration.idleTimeout = idleTimeout }
        if let frameTimeout { configuration.frameTimeout = frameTimeout }
        if let eventLoops { configuration.eventLoops = eventLoops }
        if let policyPollInterval { configuration.policyPollInterval = policyPollInterval }
        if let storePollInterval { configuration.storePollInterval = storePollInterval }
        if !adminUIDs.isEmpty { configuration.adminUIDs = adminUIDs }
        if !adminGIDs.isEmpty { configuration.adminGIDs = adminGIDs }
        if !checkUIDs.isEmpty { configuration.checkUIDs = checkUIDs }
        if !checkGIDs.isEmpty { configuration.checkGIDs = checkGIDs }
        if allowAnyAdmin { configuration.allowAnyAdmin = true }
        if let receipts { configuration.receipts.directory = receipts }
        if let receiptSampleRate { configuration.receipts.sampleRate = receiptSampleRate }
        if let receiptSubject { configuration.receipts.subject = try Self.subjectMode(receiptSubject) }
        if let receiptWhenFull { configuration.receipts.whenFull = try Self.fullPolicy(receiptWhenFull) }
        if let receiptQueue { configuration.receipts.queueCapacity = receiptQueue }
        if let receiptFileSize { configuration.receipts.maximumFileSize = receiptFileSize }
        if let metrics { configuration.metricsAddress = metrics }
        let problems = configuration.problems()
        if !problems.isEmpty { throw ConfigurationError(message: "invalid configuration:\n  " + problems.joined(separator: "\n  ")) }
        return configuration
    }

    static func mode(_ text: String, key: String = "socket-mode") throws -> UInt16 {
        guard let value = UInt16(text, radix: 8), value <= 0o777 else {
            throw ConfigurationError(message: "\(key) '\(text)' is not an octal permission like 660")
        }
        return value
    }

    func apply(file text: String, path: String, to configuration: inout ServerConfiguration) throws {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ConfigurationError(message: "\(path): not valid YAML: \(error)")
        }
        guard let node else { return }
        guard case let .mapping(mapping) = node else { throw ConfigurationError(message: "\(path): expected `key: value` lines") }
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            let line = keyNode.mark?.line ?? 0
            func fail(_ message: String) -> ConfigurationError { ConfigurationError(message: "\(path):\(line): \(key): \(message)") }
            func string() throws -> String {
                guard let text = value.string else { throw fail("expected a string") }
                return text
            }
            func int() throws -> Int {
                guard let number = value.int else { throw fail("expected a whole number") }
                return number
            }
            func double() throws -> Double {
                guard let number = value.float else { throw fail("expected a number") }
                return number
            }
            switch key {
            case "policies": configuration.policies = try string()
            case "store": configuration.store = try string()
            case "socket": configuration.socket = try string()
            case "socket-mode": configuration.socketMode = try Self.mode(value.string ?? "")
            case "max-frame-size": configuration.maximumFrameSize = try int()
            case "max-connections": configuration.maximumConnections = try int()
            case "max-connections-per-uid": configuration.maximumConnectionsPerUID = try int()
            case "max-pending-output": configuration.maximumPendingOutput = try int()
            case "file-mode": configuration.fileMode = try Self.mode(value.string ?? "", key: "file-mode")
            case "max-clock-skew": configuration.maximumClockSkew = try double()
            case "receipt-queue-bytes": configuration.receipts.queueBytes = try int()
            case "max-in-flight": configuration.maximumInFlight = try int()
            case "max-batch-items": configuration.maximumBatchItems = try int()
            case "idle-timeout": configuration.idleTimeout = try double()
            case "frame-timeout": configuration.frameTimeout = try double()
            case "event-loops": configuration.eventLoops = try int()
            case "policy-poll-interval": configuration.policyPollInterval = try double()
            case "store-poll-interval": configuration.storePollInterval = try double()
            case "admin-uids", "admin-gids", "check-uids", "check-gids":
                guard let list = value.sequence else { throw fail("expected a list of ids") }
                let ids = try list.map { item in
                    guard let id = item.int, id >= 0, id <= Int(UInt32.max) else { throw fail("expected numeric ids") }
                    return UInt32(id)
                }
                switch key {
                case "admin-uids": configuration.adminUIDs = ids
                case "admin-gids": configuration.adminGIDs = ids
                case "check-uids": configuration.checkUIDs = ids
                default: configuration.checkGIDs = ids
                }
            case "receipts": configuration.receipts.directory = try string()
            case "receipt-sample-rate": configuration.receipts.sampleRate = try double()
            case "receipt-subject": configuration.receipts.subject = try Self.subjectMode(try string())
            case "receipt-when-full": configuration.receipts.whenFull = try Self.fullPolicy(try string())
            case "receipt-queue": configuration.receipts.queueCapacity = try int()
            case "receipt-file-size": configuration.receipts.maximumFileSize = try int()
            case "metrics": configuration.metricsAddress = try string()
            case "allow-any-admin":
                guard let flag = value.bool else { throw fail("expected true or false") }
                configuration.allowAnyAdmin = flag
            default:
                throw ConfigurationError(message: "\(path):\(line): unknown key '\(key)'; known keys: \(Self.fileKeys.joined(separator: ", "))")
            }
        }
    }
}
