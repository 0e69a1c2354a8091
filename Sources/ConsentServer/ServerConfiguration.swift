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
    public var maximumFrameSize = 1 << 20
    /// Most connections served at once; more are refused with RESOURCE_EXHAUSTED.
    public var maximumConnections = 1024
    /// Most requests in flight on one connection before the daemon stops reading from it.
    public var maximumInFlight = 256
    /// Most items in one CheckBatch.
    public var maximumBatchItems = 10_000
    /// A connection that sends nothing for this long is closed (seconds; 0 = never).
    public var idleTimeout: Double = 300
    /// Event loop threads (0 = one per core).
    public var eventLoops = 0
    /// How often the policy directory is checked for changes (seconds; 0 = only on SIGHUP).
    public var policyPollInterval: Double = 0.5
    /// How often the store is checked for other processes' writes (seconds).
    public var storePollInterval: Double = 0.01
    /// User ids that may administer consent (RecordConsent, History, EraseSubject) besides the daemon's own uid and root.
    public var adminUIDs: [UInt32] = []
    /// Let every peer administer consent (for tests and single-user machines).
    public var allowAnyAdmin = false

    /// The defaults: `./Policies`, `./consentd.sqlite`, `./consentd.sock`.
    public init() {}

    /// Problems with the values, in plain words; empty when valid.
    public func problems() -> [String] {
        var problems: [String] = []
        if policies.isEmpty { problems.append("policies: the policy directory must not be empty") }
        if store.isEmpty { problems.append("store: the store path must not be empty") }
        if socket.isEmpty { problems.append("socket: the socket path must not be empty") }
        if socket.utf8.count > 107 { problems.append("socket: '\(socket)' is longer than the 107 bytes a Unix socket path may have") }
        if socketMode > 0o777 { problems.append("socket-mode: must be an octal permission like 660") }
        if maximumFrameSize < 64 || maximumFrameSize > 64 << 20 { problems.append("max-frame-size: must be between 64 bytes and 64 MiB") }
        if maximumConnections < 1 { problems.append("max-connections: must be at least 1") }
        if maximumInFlight < 1 { problems.append("max-in-flight: must be at least 1") }
        if maximumBatchItems < 1 { problems.append("max-batch-items: must be at least 1") }
        if idleTimeout < 0 { problems.append("idle-timeout: must not be negative") }
        if eventLoops < 0 || eventLoops > 256 { problems.append("event-loops: must be between 0 (one per core) and 256") }
        if policyPollInterval < 0 { problems.append("policy-poll-interval: must not be negative") }
        if storePollInterval <= 0 { problems.append("store-poll-interval: must be positive") }
        return problems
    }
}
