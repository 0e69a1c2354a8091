import ConsentModel
import ConsentStore
import Logging
import PolicyEngine

/// What every connection and service of one daemon shares.
public final class ServerState: Sendable {
    /// The validated configuration.
    public let configuration: ServerConfiguration
    /// Keys interned once for the policy sets and the consent index alike.
    public let vocabulary: Vocabulary
    /// The serving policy set.
    public let policies: PolicyHolder
    /// The consent store and its in-memory index.
    public let feed: ConsentFeed
    /// Counters for Status and metrics.
    public let counters = ServerCounters()
    /// When the daemon started.
    public let startedAt: Timestamp
    /// The daemon's own user id (may always administer).
    public let ownUID: UInt32
    let logger: Logger

    init(configuration: ServerConfiguration, vocabulary: Vocabulary, policies: PolicyHolder, feed: ConsentFeed, ownUID: UInt32, logger: Logger) {
        self.configuration = configuration
        self.vocabulary = vocabulary
        self.policies = policies
        self.feed = feed
        self.startedAt = .now()
        self.ownUID = ownUID
        self.logger = logger
    }

    /// Whether a peer with this uid may use the administration methods.
    func mayAdminister(uid: UInt32?) -> Bool {
        if configuration.allowAnyAdmin { return true }
        guard let uid else { return false }
        return uid == ownUID || uid == 0 || configuration.adminUIDs.contains(uid)
    }
}
