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

    /// The server frozen whole (SIGSTOP: connections accepted by the kernel and never answered,
    /// statements under way never finishing) while four clients write at once: every write is
    /// answered by the daemon — with UNAVAILABLE — within the clients' 20 s, however many steps
    /// (the connection held by another write, connecting, the statement, the index update) it
    /// would have waited for one bound each; the server let go, writes succeed again, and what
    /// was acknowledged is stored once.
    @Test func aFrozenServerGetsEveryWriteAnAnswerWithinTheDeadline() async throws {
        let database = try TemporaryPostgres(serverURI: FaultPostgres.serverURI)
        let daemon = try await DaemonHarness {
            $0.store = database.uri
            $0.storePollInterval = 0.05
        }
        let clients = try (0..<4).map { _ in try daemon.client(timeout: 20) }
        // Each write the same request every time it is sent (a retry with its key must match).
        let instant = Timestamp.now()
        let records = (0..<4).map { index in ConsentRecord(subject: "f\(index)", purpose: Self.targeted, choice: .deny, recordedAt: instant, source: "test") }
        _ = try clients[0].record([ConsentRecord(subject: "f0", purpose: Self.targeted, choice: .grant, recordedAt: .now(), source: "test")], idempotencyKey: "before")
        try FaultPostgres.signal(SIGSTOP)
        let outcomes: [[ConsentClientError?]]
        do {
            defer { try? FaultPostgres.signal(SIGCONT) }
            outcomes = try await offThePool(threads: clients.count) { index in
                var seen: [ConsentClientError?] = []
                for write in 0..<2 {
                    do {
                        _ = try clients[index].record([records[index]], idempotencyKey: "frozen-\(index)-\(write)")
                        seen.append(nil)
                    } catch let error as ConsentClientError {
                        seen.append(error)
                    }
                }
                return seen
            }
        }
        for (index, seen) in outcomes.enumerated() {
            #expect(seen.count == 2)
            for case let error? in seen {
                // An answer from the daemon (UNAVAILABLE: nothing sent, or the write's fate
                // unknown), never the client giving up.
                #expect(error.kind == .server(.unavailable), "client \(index): \(error.kind) \(error)")
            }
        }
        #expect(outcomes.joined().contains { $0 != nil }, "no write met the frozen server: the test did not test it")
        // Let go, the same writes retried with their keys are stored exactly once (off the
        // cooperative pool: these calls block, and other suites' tasks need its threads).
        let retried = try await offThePool(threads: clients.count) { index in
            (0..<2).map { write -> String? in
                var last = ""
                let stored = PostgresDaemonTests.eventually(20) {
                    do { _ = try clients[index].record([records[index]], idempotencyKey: "frozen-\(index)-\(write)") } catch {
                        last = "\(error)"
                        return false
                    }
                    return true
                }
                return stored ? nil : last
            }
        }
        #expect(retried.joined().allSatisfy { $0 == nil }, "\(retried)")
        let store = try PostgresConsentStore(address: database.address)
        var stored = 0
        try store.forEachRecord { _ in stored += 1 }
        #expect(stored == 1 + 2 * clients.count)
        try await daemon.stop()
    }

    /// One deadline bounds a store operation's every step (`StoreDeadline`), and a step is not
    /// begun without a statement's whole bound (7 s) still ahead — so that a statement is never
    /// cut short after the server may have committed it. Against a frozen server: a write with
    /// 3 s left is refused before anything is sent; one that would wait for the connection
    /// another stuck write holds waits only what its deadline leaves (9 s: 2 s), not the 5 s a
    /// wait may take on its own.
    @Test func aStoreDeadlineBoundsEveryStepAndSendsNothingItCannotWaitFor() async throws {
        let database = try TemporaryPostgres(serverURI: FaultPostgres.serverURI)
        let store = try PostgresConsentStore(address: database.address)
        let record = ConsentRecord(subject: "d", purpose: Self.targeted, choice: .grant, recordedAt: .now(), source: "test")
        _ = try store.append([record], idempotencyKey: nil, payload: nil, now: .now()) // connected, keys interned
        try FaultPostgres.signal(SIGSTOP)
        defer { try? FaultPostgres.signal(SIGCONT) }
        // Off the cooperative pool: these calls block.
        let errors = try await offThePool { _ -> [String] in
            var errors: [String] = []
            do {
                try StoreDeadline.within(.seconds(3)) { _ = try store.append([record], idempotencyKey: nil, payload: nil, now: .now()) }
            } catch { errors.append("\(error)") }
            // A write without a deadline takes the connection and waits for the frozen server.
            let holding = Thread { _ = try? store.append([record], idempotencyKey: nil, payload: nil, now: .now()) }
            holding.start()
            usleep(300_000)
            do {
                try StoreDeadline.within(.seconds(9)) { _ = try store.append([record], idempotencyKey: nil, payload: nil, now: .now()) }
            } catch { errors.append("\(error)") }
            return errors
        }[0]
        try #require(errors.count == 2, "a write under a deadline did not fail: \(errors)")
        #expect(errors[0].contains("deadline left less than the 7000 ms") && errors[0].contains("nothing was sent"), "\(errors[0])")
        let waited = errors[1].components(separatedBy: "the connection was not free within ").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
        #expect(waited.map { (1_500...2_000).contains($0) } == true && errors[1].contains("nothing was sent"), "\(errors[1])")
    }
}
