import ConsentClient
import ConsentModel
@testable import ConsentReceipts
@testable import ConsentServer
import ConsentStore
import ConsentTesting
import ConsentWire
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct AbuseTests {
    /// Raises the soft descriptor limit as far as needed (and allowed); returns how many
    /// connections this test can afford to hold open.
    func affordableConnections(_ wanted: Int) -> Int {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        // Headroom for the other suites that run beside this one in the same process (stores,
        // daemons, sockets): running out of descriptors would make the daemon drop connections.
        let needed = rlim_t(wanted * 2 + 4096)
        if limit.rlim_cur < needed {
            limit.rlim_cur = limit.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return min(wanted, (Int(limit.rlim_cur) - 256) / 2)
    }

    @Test func idleAndSlowClientsDoNotStopAWellBehavedOneAndTheLimitsHold() async throws {
        let idleCount = affordableConnections(1000)
        #expect(idleCount == 1000, "the descriptor limit allows only \(idleCount) idle connections")
        let harness = try await DaemonHarness {
            $0.maximumConnections = idleCount + 6
            $0.maximumConnectionsPerUID = idleCount + 6  // one uid plays every client here
            $0.idleTimeout = 12  // long enough that opening the idle connections on a busy machine outlasts none of them
            $0.frameTimeout = 1
        }
        var idle: [RawConnection] = []
        for _ in 0..<idleCount { idle.append(try RawConnection(harness.socket)) }
        // Slow clients: connected now, dripping one byte of a valid frame every 100 ms later.
        let frame = FrameCodec.frame(try checkRequest(1, "slow", measurement, "user.behavior").serializedBytes())
        let slow = try (0..<5).map { _ in try RawConnection(harness.socket) }
        let socket = harness.socket
        let idleConnections = idle
        let cap = idleCount + 6
        // Everything the well-behaved client does happens on one thread of its own, from its
        // connect to its last Check: a test that waited between them for a thread of the
        // (busy, shared) cooperative pool could let the idle timeout close it, and the test would
        // then be measuring the machine's load, not the daemon.
        let outcomes = try await offThePool { _ -> [String] in
            var problems: [String] = []
            // A well-behaved client takes the last slot; the cap refuses the next connection.
            // This happens before the slow clients send their first byte (their frame timeout
            // starts there), so every slot is certainly held.
            let client = try ConsentClient(socketPath: socket, timeout: 10)
            do {
                let open = try client.status().counters.connectionsOpen
                if open != UInt64(cap) { problems.append("\(open) connections open before the cap is tried, not \(cap)") }
            } catch {
                return ["the well-behaved client's first request failed: \(error)"]
            }
            let extra = try RawConnection(socket)
            let refused = try responses(in: extra.readToEnd())
            if refused.first?.error.code != .resourceExhausted { problems.append("the connection over the cap was not refused: \(refused)") }
            // On a thread of its own: the test's other work must not be able to starve it into
            // looking idle.
            let dripping = Thread {
                for byte in frame {
                    for connection in slow { connection.send([byte]) }
                    usleep(100_000)
                }
            }
            dripping.start()
            // The well-behaved client is answered throughout.
            for i in 0..<2000 {
                do {
                    let answer = try client.check(subject: "w\(i % 10)", purpose: measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE"))
                    if answer.reason != .noConsent { problems.append("check \(i): \(answer.reason)") }
                } catch {
                    return problems + ["check \(i) of the well-behaved client failed: \(error)"]
                }
            }
            // The slow clients are cut off by the frame timeout, with an error that says why.
            for connection in slow {
                let answers = try responses(in: connection.readToEnd())
                if answers.first?.error.code != .malformedFrame || answers.first?.error.message.contains("did not arrive whole within 1.0 s") != true {
                    problems.append("slow client: \(answers)")
                }
            }
            // The idle ones by the idle timeout (readToEnd returns when the daemon closes).
            for connection in idleConnections.prefix(20) where !connection.readToEnd().isEmpty { problems.append("an idle connection got data") }
            return problems
        }
        #expect(outcomes.flatMap { $0 }.isEmpty, "\(outcomes)")
        // (The well-behaved client has been quiet as long, so it asks through a new connection —
        // one, reused while polling: a new connection per poll could find every slot still held
        // while a loaded daemon works through the idle closes, and be refused.)
        let observer = try harness.client()
        var status = try observer.status()
        for _ in 0..<100 where status.counters.connectionsIdleClosed < UInt64(idleCount) {
            try await Task.sleep(for: .milliseconds(50))
            status = try observer.status()
        }
        #expect(status.counters.connectionsIdleClosed >= UInt64(idleCount))
        #expect(status.counters.connectionsRefused == 1)
        #expect(status.counters.framesRejected == 5)
        try await harness.stop()
    }
}
