import ConsentReceipts
import ConsentStore
import Foundation
import ConsentWire

/// Everything the daemon can be told, each with a default; validated once at start-up.
public struct ServerConfiguration: Sendable, Equatable {
    /// Directory of policy files (`*.yaml`, recursively).
    public var policies = "Policies"
    /// The consent store file.
    public var store = "consentd.sqlite"
    /// The Unix socket path.
    public var socket = "consentd.sock"
    /// Permission bits of the socket file.
    public var socketMode: UInt16 = 0o660
    /// Largest request frame accepted, in bytes.
    public var maximumFrameSize = FrameCodec.defaultMaximumFrameSize
    /// Most connections served at once; more are refused with RESOURCE_EXHAUSTED.
    public var maximumConnections = 1024
    /// Most connections one uid may hold at once (0: three quarters of `maximumConnections`), so
    /// that one peer cannot take every slot.
    public var maximumConnectionsPerUID = 0
    /// Bytes of answers a connection may have waiting for its peer before the daemon stops
    /// taking frames from it (and reading from it) until the peer reads.
    public var maximumPendingOutput = 256 << 10
    /// Permission bits of the store file (and its WAL and SHM) and of receipt files; the
    /// default keeps them private to the daemon's user.
    public var fileMode: UInt16 = 0o600
    /// How far in the future a record's `recorded_at` may lie, in seconds.
    public var maximumClockSkew: Double = 300
    /// Most records in one RecordConsent.
    public static let maximumRecordsPerWrite = 10_000
    /// Most requests in flight on one connection before the daemon stops reading from it.
    public var maximumInFlight = 256
    /// Most items in one CheckBatch.
    public var maximumBatchItems = 10_000
    /// A connection that sends nothing for this long is closed (seconds; 0 = never).
    public var idleTimeout: Double = 300
    /// A frame must arrive whole within this many seconds of its first byte (0 = no limit).
    public var frameTimeout: Double = 10
    /// Event loop threads (0 = one per core).
    public var eventLoops = 0
    /// How often the policy directory is checked for changes (seconds; 0 = only on SIGHUP).
    public var policyPollInterval: Double = 0.5
    /// How often the store is checked for other processes' writes (seconds); 0: 10 ms for an
    /// SQLite store, 1 s for PostgreSQL (whose NOTIFY wakes the follower at once; the poll is the
    /// heartbeat that covers a lost notification).
    public var storePollInterval: Double = 0
    /// `storePollInterval` with its automatic value resolved for this store.
    public var effectiveStorePollInterval: Double {
        storePollInterval > 0 ? storePollInterval : PostgresAddress.isPostgres(store) ? 1 : 0.01
    }
    /// How long the consent index may go without a look at the store confirming it current
    /// before decisions that need consent are denied `CONSENT_UNAVAILABLE` (seconds).
    public var maximumStaleness: Double = 5
    /// How long a decision whose context names a `min_sequence` this daemon has not applied
    /// waits for its feed (seconds); past that, decisions that need consent are denied.
    public var maximumSequenceWait: Double = 0.1
    /// User ids that may administer consent (RecordConsent, History, EraseSubject) besides the daemon's own uid and root.
    public var adminUIDs: [UInt32] = []
    /// Group ids (the peer's primary group) whose members may administer consent.
    public var adminGIDs: [UInt32] = []
    /// User ids that may check (Check, CheckBatch, ListUses, Status). Empty, with `checkGIDs`
    /// empty too: every peer that can open the socket may check.
    public var checkUIDs: [UInt32] = []
    /// Group ids (the peer's primary group) whose members may check.
    public var checkGIDs: [UInt32] = []
    /// Let every peer administer consent (for tests and single-user machines).
    public var allowAnyAdmin = false
    /// Decision receipts (off unless `receipts.directory` is set).
    public var receipts = ReceiptConfiguration()
    /// `host:port` of the Prometheus listener (e.g. `127.0.0.1:9464`); nil: no metrics listener.
    public var metricsAddress: String?

    /// The defaults: `./Policies`, `./consentd.sqlite`, `./consentd.sock`.
    public init() {}

    /// The per-uid connection cap in force.
    public var effectiveConnectionsPerUID: Int {
        maximumConnectionsPerUID > 0 ? maximumConnectionsPerUID : max(1, maximumConnections / 4 * 3 + maximumConnections % 4 * 3 / 4)
    }

    /// Whether `path` is `directory` or below it, symbolic links resolved: the longest part of
    /// each that exists is resolved by the file system, and the rest appended.
    static func isSameOrInside(_ path: String, _ directory: String) -> Bool {
        let resolved = resolve(path), base = resolve(directory)
        return resolved == base || resolved.hasPrefix(base.hasSuffix("/") ? base : base + "/")
    }

    /// `path` absolute, with its longest existing prefix's links resolved (`realpath`). Nothing is
    /// simplified as text before that: `link/..` is the link's target's parent, as the kernel
    /// reads it, not the directory holding the link. `.` and `..` in the part that does not exist
    /// yet are applied to the resolved prefix.
    static func resolve(_ path: String) -> String {
        var existing = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var rest: [String] = []
        var found = realpath(existing, nil)
        while found == nil, existing != "/" {
            rest.insert((existing as NSString).lastPathComponent, at: 0)
            existing = (existing as NSString).deletingLastPathComponent
            found = realpath(existing, nil)
        }
        guard let real = found else { return path }
        defer { free(real) }
        var resolved = String(cString: real)
        for component in rest where !component.isEmpty && component != "." {
            if component == ".." {
                resolved = (resolved as NSString).deletingLastPathComponent
            } else {
                resolved += (resolved.hasSuffix("/") ? "" : "/") + component
            }
        }
        return resolved
    }

    /// Problems with the values, in plain words; empty when valid.
    public func problems() -> [String] {
        var problems: [String] = []
        if policies.isEmpty { problems.append("policies: the policy directory must not be empty") }
        if store.isEmpty { problems.append("store: the store path must not be empty") }
        if socket.isEmpty { problems.append("socket: the socket path must not be empty") }
        if socket.utf8.count > 107 { problems.append("socket: '\(socket)' is longer than the 107 bytes a Unix socket path may have") }
        if socketMode > 0o777 { problems.append("socket-mode: must be an octal permission like 660") }
        if maximumFrameSize < 64 || maximumFrameSize > 64 << 20 { problems.append("max-frame-size: must be between 64 bytes and 64 MiB") }
        if maximumConnections < 1 || maximumConnections > 1_000_000 { problems.append("max-connections: must be between 1 and 1000000") }
        if maximumInFlight < 1 || maximumInFlight > 1 << 20 { problems.append("max-in-flight: must be between 1 and 1048576") }
        if maximumConnectionsPerUID < 0 || maximumConnectionsPerUID > 1_000_000 {
            problems.append("max-connections-per-uid: must be between 0 (three quarters of max-connections) and 1000000")
        }
        if maximumPendingOutput < 4096 || maximumPendingOutput > 1 << 30 { problems.append("max-pending-output: must be between 4096 bytes and 1 GiB") }
        if fileMode & ~0o660 != 0 || fileMode & 0o600 != 0o600 { problems.append("file-mode: must give the owner read and write (600) and may add group bits (640, 660); never others or execute") }
        if !(maximumClockSkew >= 0 && maximumClockSkew <= 86_400) { problems.append("max-clock-skew: must be between 0 and 86400 seconds") }
        if maximumBatchItems < 1 || maximumBatchItems > 1_000_000 { problems.append("max-batch-items: must be between 1 and 1000000") }
        // Times: 0 where it means "never" or "only on SIGHUP", otherwise at least the
        // resolution the daemon keeps (a smaller value would round to 0 and mean the opposite).
        if !(idleTimeout == 0 || (idleTimeout >= 0.001 && idleTimeout <= 1e6)) { problems.append("idle-timeout: must be 0 (never) or between 0.001 and 1000000 seconds") }
        if !(frameTimeout == 0 || (frameTimeout >= 0.001 && frameTimeout <= 1e6)) { problems.append("frame-timeout: must be 0 (never) or between 0.001 and 1000000 seconds") }
        if eventLoops < 0 || eventLoops > 256 { problems.append("event-loops: must be between 0 (one per core) and 256") }
        if !(policyPollInterval == 0 || (policyPollInterval >= 0.05 && policyPollInterval <= 1e6)) {
            problems.append("policy-poll-interval: must be 0 (only on SIGHUP) or between 0.05 and 1000000 seconds")
        }
        if !(storePollInterval == 0 || storePollInterval >= 0.001 && storePollInterval <= 1e6) { problems.append("store-poll-interval: must be 0 (automatic) or between 0.001 and 1000000 seconds") }
        if !(maximumSequenceWait >= 0 && maximumSequenceWait <= 10) { problems.append("max-sequence-wait: must be between 0 and 10 seconds") }
        if !(maximumStaleness >= 0.1 && maximumStaleness <= 86_400) { problems.append("max-staleness: must be between 0.1 and 86400 seconds") }
        if maximumStaleness <= effectiveStorePollInterval { problems.append("max-staleness: must be longer than store-poll-interval (\(effectiveStorePollInterval) s), or every pause between looks would deny") }
        if let receipts = self.receipts.directory, !receipts.isEmpty, !policies.isEmpty,
           Self.isSameOrInside(receipts, policies) || Self.isSameOrInside(policies, receipts) {
            problems.append("receipts: '\(receipts)' and the policy directory '\(policies)' overlap; the policy sources archived beside the receipts would be read as policies (give each a directory of its own)")
        }
        problems += receipts.problems()
        if let metricsAddress, MetricsAddress(metricsAddress) == nil {
            problems.append("metrics: '\(metricsAddress)' is not host:port (e.g. 127.0.0.1:9464)")
        }
        return problems
    }
}

/// A parsed `host:port`.
public struct MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    /// Parses `host:port` (`[::1]:9464` for IPv6); nil when malformed.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), port >= 0, port <= 65_535 else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
