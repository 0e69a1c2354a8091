import ConsentClient
import ConsentModel
import ConsentServer
import ConsentStore
import ConsentTesting
import ConsentWire
import Foundation
import Testing

/// A daemon on a PostgreSQL server that these tests stop and restart (`FaultPostgres`; skipped
/// without one).
@Suite(.enabled(if: FaultPostgres.skipReason == nil, Comment(rawValue: FaultPostgres.skipReason ?? "")), .serialized)
struct PostgresFaultTests {
    static let targeted = "marketing.advertising.targeted"
    static let browsing = "user.behavior.browsing"
    static let eea = RequestContext(jurisdiction: "DE")

    /// `pg_ctl restart -m immediate` (a crash: no checkpoint, connections cut) in the middle of a
    /// stream of writes, each retried with its idempotency key until acknowledged: afterwards
    /// every acknowledged write is in the store exactly once — a write whose answer was lost in
    /// the crash but had committed is replayed, not stored twice — and the daemon's index,
    /// never restarted, equals a fresh load.
    @Test func everyAcknowledgedWriteSurvivesACrashAndRetriesStoreOnce() async throws {
        let database = try TemporaryPostgres(serverURI: FaultPostgres.serverURI)
        let daemon = try await DaemonHarness {
            $0.store = database.uri
            $0.storePollInterval = 0.05
        }
        let client = try daemon.client(timeout: 20)
        var acknowledged: [String: [UInt64]] = [:]
        var retries = 0
        let crashed = DispatchSemaphore(value: 0)
        for write in 0..<120 {
            if write == 40 {
                // The crash happens while writes are in flight (from another thread).
                Thread.detachNewThread {
                    try? FaultPostgres.ctl("-m immediate -w restart")
                    crashed.signal()
                }
            }
            let key = "crash-\(write)"
            let record = ConsentRecord(subject: "c\(write % 30)", purpose: write % 2 == 0 ? Self.targeted : "marketing",
                                       choice: write % 3 == 0 ? .deny : .grant, recordedAt: .now(), source: "test", noticeVersion: 3)
            let deadline = Date().addingTimeInterval(30)
            while true {
                do {
                    acknowledged[key] = try client.record([record], idempotencyKey: key).sequences
                    break
                } catch {
                    retries += 1
                    guard Date() < deadline else { throw error }
                    usleep(50_000)
                }
            }
        }
        crashed.wait()
        print("writes retried across the crash: \(retries)")
        #expect(retries > 0, "no write met the crash: the test did not test it")
        let store = try PostgresConsentStore(address: database.address)
        var stored: [UInt64] = []
        try store.forEachRecord { stored.append($0.sequence) }
        #expect(stored.count == 120, "\(stored.count) records for 120 acknowledged writes")
        #expect(Set(acknowledged.values.flatMap { $0 }) == Set(stored), "an acknowledged sequence is missing, or a record was stored that no answer acknowledged")
        // The daemon, never restarted, follows the same store.
        let fresh = try ConsentFeed(store: store, vocabulary: daemon.daemon.state.feed.index.vocabulary)
        #expect(PostgresDaemonTests.eventually { daemon.daemon.state.feed.appliedSequence == fresh.appliedSequence })
        for subject in (0..<30).map({ "c\($0)" }) {
            #expect(Array(daemon.daemon.state.feed.index.snapshot().records(of: subject)) == Array(fresh.index.snapshot().records(of: subject)))
        }
        try await daemon.stop()
    }

    /// The server stopped for longer than --max-staleness: decisions that need consent fail
    /// closed, legal-basis ones are answered, writes fail with UNAVAILABLE; the server started
    /// again, everything resumes without restarting the daemon, and a write made meanwhile by
    /// another daemon is seen.
    @Test func aStoppedServerFailsDecisionsClosedUntilItIsBack() async throws {
        let database = try TemporaryPostgres(serverURI: FaultPostgres.serverURI)
        let daemon = try await DaemonHarness {
            $0.store = database.uri
            $0.storePollInterval = 0.05
            $0.maximumStaleness = 1
        }
        let client = try daemon.client(timeout: 20)
        _ = try client.record([ConsentRecord(subject: "sam", purpose: Self.targeted, choice: .grant, recordedAt: .now(), source: "test", noticeVersion: 3)])
        #expect(try client.check(subject: "sam", purpose: Self.targeted, dataCategory: Self.browsing, context: Self.eea).reason == .consentGranted)
        try FaultPostgres.ctl("-m fast -w stop")
        do {
            #expect(PostgresDaemonTests.eventually(10) { (try? client.status().consentStale) == true }, "the daemon did not notice the server was gone")
            let check = try client.check(subject: "sam", purpose: Self.targeted, dataCategory: Self.browsing, context: Self.eea)
            #expect(check.decision == .deny && check.reason == .consentUnavailable)
            #expect(try client.check(subject: "sam", purpose: "service.essential", dataCategory: "user", context: Self.eea).reason == .legalBasis)
            #expect(throws: (any Error).self) {
                _ = try client.record([ConsentRecord(subject: "sam", purpose: "marketing", choice: .deny, recordedAt: .now(), source: "test")])
            }
        }
        try FaultPostgres.ctl("-w start")
        // Another writer withdraws while this daemon reconnects.
        let other = try PostgresConsentStore(address: database.address)
        _ = try other.append([ConsentRecord(subject: "sam", purpose: "marketing", choice: .deny, recordedAt: .now(), source: "test")], idempotencyKey: nil, payload: nil, now: .now())
        #expect(PostgresDaemonTests.eventually(15) {
            (try? client.check(subject: "sam", purpose: Self.targeted, dataCategory: Self.browsing, context: Self.eea).reason) == .consentDenied
        }, "decisions did not resume with the current store after the server came back")
        #expect(try client.status().consentStale == false)
        try await daemon.stop()
    }
}
