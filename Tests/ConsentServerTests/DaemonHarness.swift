import ConsentClient
import ConsentModel
import ConsentServer
import ConsentWire
import Foundation
import Logging
import ServiceLifecycle

/// Runs a real consentd in this process on a real Unix socket in a scratch directory.
final class DaemonHarness: @unchecked Sendable {
    static let shippedPolicies = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Policies")

    let directory: URL
    let policies: URL
    let daemon: ConsentDaemon
    let group: ServiceGroup
    let task: Task<Void, Error>
    var socket: String { daemon.state.configuration.socket }

    init(configure: (inout ServerConfiguration) -> Void = { _ in }) async throws {
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

    func client(timeout: Double = 10) throws -> ConsentClient { try ConsentClient(socketPath: socket, timeout: timeout) }

    /// Graceful shutdown; the scratch directory (store, policies) is removed unless kept.
    func stop(keepFiles: Bool = false) async throws {
        await group.triggerGracefulShutdown()
        try await task.value
        daemon.shutdownResources()
        if !keepFiles { try? FileManager.default.removeItem(at: directory) }
    }

    func write(policy name: String, _ text: String) throws {
        try text.write(to: policies.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }
}

/// A request with an id.
func request(_ id: UInt64, _ body: (inout Consentd_V1_Request) -> Void) -> Consentd_V1_Request {
    var request = Consentd_V1_Request()
    request.id = id
    body(&request)
    return request
}

func checkRequest(_ id: UInt64, _ subject: String, _ purpose: String, _ data: String, jurisdiction: String = "DE") -> Consentd_V1_Request {
    request(id) {
        $0.check = Consentd_V1_CheckRequest.with {
            $0.subjectID = subject
            $0.purpose = purpose
            $0.dataCategory = data
            $0.context.jurisdiction = jurisdiction
        }
    }
}

func grant(_ subject: String, _ purpose: String, _ choice: Choice = .grant, notice: UInt32 = 3) -> ConsentRecord {
    ConsentRecord(subject: subject, purpose: purpose, choice: choice, recordedAt: .now(), source: "test", noticeVersion: notice)
}

/// Runs blocking work (socket I/O with the blocking client) on threads of its own, so it never
/// occupies the few threads of Swift's cooperative pool that the daemon's services and other
/// tests running in parallel need. `body` is called once per thread with its index.
func offThePool<T: Sendable>(threads: Int = 1, _ body: @escaping @Sendable (Int) throws -> T) async throws -> [T] {
    try await withThrowingTaskGroup(of: T.self) { group in
        for index in 0..<threads {
            group.addTask {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
                    let thread = Thread { continuation.resume(with: Result { try body(index) }) }
                    thread.stackSize = 1 << 20
                    thread.start()
                }
            }
        }
        var results: [T] = []
        for try await result in group { results.append(result) }
        return results
    }
}
