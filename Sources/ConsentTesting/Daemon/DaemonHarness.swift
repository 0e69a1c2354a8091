import ConsentClient
import ConsentModel
import ConsentServer
import ConsentWire
import Foundation
import Logging
import ServiceLifecycle

/// Runs a real consentd in this process on a real Unix socket in a scratch directory.
public final class DaemonHarness: @unchecked Sendable {
    /// The repository's `Policies` folder (this file is `Sources/ConsentTesting/Daemon/DaemonHarness.swift`).
    public static let shippedPolicies = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Policies")

    public let directory: URL
    public let policies: URL
    public let daemon: ConsentDaemon
    public let group: ServiceGroup
    public let task: Task<Void, Error>
    public var socket: String { daemon.state.configuration.socket }

    public init(configure: (inout ServerConfiguration) -> Void = { _ in }) async throws {
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("cd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        policies = directory.appendingPathComponent("Policies")
        try FileManager.default.copyItem(at: DaemonHarness.shippedPolicies, to: policies)
        var configuration = ServerConfiguration()
        configuration.policies = policies.path
        configuration.store = directory.appendingPathComponent("consentd.sqlite").path
        configuration.socket = directory.appendingPathComponent("consentd.sock").path
        configuration.policyPollInterval = 0
        configuration.allowAnyAdmin = true
        configure(&configuration)
        var logger = Logger(label: "consentd-test")
        logger.logLevel = .critical
        daemon = try ConsentDaemon(configuration: configuration, logger: logger)
        let group = daemon.makeServiceGroup(signals: [])
        self.group = group
        task = Task { try await group.run() }
        try await daemon.listener.waitUntilListening()
    }

    public func client(timeout: Double = 10) throws -> ConsentClient { try ConsentClient(socketPath: socket, timeout: timeout) }

    /// Graceful shutdown; the scratch directory (store, policies) is removed unless kept.
    public func stop(keepFiles: Bool = false) async throws {
        await group.triggerGracefulShutdown()
        try await task.value
        daemon.shutdownResources()
        if !keepFiles { try? FileManager.default.removeItem(at: directory) }
    }

    public func write(policy name: String, _ text: String) throws {
        try text.write(to: policies.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }
}
