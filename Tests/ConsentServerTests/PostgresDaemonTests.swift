import ConsentClient
import ConsentModel
import ConsentServer
import ConsentStore
import ConsentTesting
import ConsentWire
import Foundation
import Testing

/// Daemons on one PostgreSQL store (`CONSENTD_TEST_POSTGRES`; skipped without it).
@Suite(.enabled(if: TemporaryPostgres.serverURI != nil, Comment(rawValue: TemporaryPostgres.skipReason ?? "")), .serialized)
struct PostgresDaemonTests {
    static let targeted = "marketing.advertising.targeted"
    static let browsing = "user.behavior.browsing"
    static let eea = RequestContext(jurisdiction: "DE")

    static func grant(_ subject: String, _ purpose: String = targeted) -> ConsentRecord {
        ConsentRecord(subject: subject, purpose: purpose, choice: .grant, recordedAt: .now(), source: "test", noticeVersion: 3)
    }

    static func withdraw(_ subject: String) -> ConsentRecord {
        ConsentRecord(subject: subject, purpose: "marketing", choice: .deny, recordedAt: .now(), source: "test")
    }

    /// Daemon `client`'s answer to "may targeted ads use `subject`'s browsing data in Germany?".
    static func ask(_ client: ConsentClient, _ subject: String) throws -> Consentd_V1_CheckResponse {
        try client.check(subject: subject, purpose: targeted, dataCategory: browsing, context: eea)
    }

    /// Polls `condition` every 10 ms for at most `seconds`; whether it came true (other suites
    /// of this target use it too).
    static func eventually(_ seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }

    /// A withdrawal through daemon A stops daemon B's use of the data once B's feed has it, and
    /// a grant through B reaches A the same way.
    @Test func aWithdrawalThroughOneDaemonReachesTheOther() async throws {
        let database = try TemporaryPostgres()
        let a = try await DaemonHarness { $0.store = database.uri }
        let b = try await DaemonHarness { $0.store = database.uri }
        let (clientA, clientB) = (try a.client(), try b.client())
        _ = try clientB.record([Self.grant("alice")])
        #expect(try Self.eventually { try Self.ask(clientA, "alice").reason == .consentGranted })
        _ = try clientA.record([Self.withdraw("alice")])
        // A itself: the very next Check.
        #expect(try Self.ask(clientA, "alice").reason == .consentDenied)
        #expect(try Self.eventually { try Self.ask(clientB, "alice").reason == .consentDenied })
        #expect(try clientB.status().storePath == database.uri)
        try await a.stop()
        try await b.stop()
    }

    /// A commit through A wakes B through NOTIFY, not B's heartbeat poll (30 s here); killing
    /// B's listening connection (pg_terminate_backend) loses nothing: it is replaced, and the
    /// next commit wakes B again.
    @Test func aCommitWakesAnotherDaemonAndAKilledListenerIsReplaced() async throws {
        let database = try TemporaryPostgres()
        let a = try await DaemonHarness { $0.store = database.uri }
        let b = try await DaemonHarness {
            $0.store = database.uri
            $0.storePollInterval = 30
            $0.maximumStaleness = 120
        }
        let (clientA, clientB) = (try a.client(), try b.client())
        let admin = try database.connectToServer()
        func listeners() throws -> Int {
            Int(try admin.column("SELECT count(*)::text FROM pg_stat_activity WHERE datname = '\(database.name)' AND application_name = 'consentd-listen'")[0]) ?? 0
        }
        #expect(try Self.eventually(5) { try listeners() == 2 }, "each daemon listens on one connection")
        var delays: [Double] = []
        for round in 0..<6 {
            if round == 3 {
                try admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(database.name)' AND application_name = 'consentd-listen'")
                #expect(try Self.eventually(5) { try listeners() == 2 }, "the listening connections were not replaced")
            }
            let subject = "woken-\(round)"
            let started = Date()
            _ = try clientA.record([Self.grant(subject)])
            let seen = try Self.eventually(5) {
                try Self.ask(clientB, subject).reason == .consentGranted
            }
            #expect(seen, "round \(round): B did not see A's commit within 5 s (its poll is 30 s)")
            delays.append(Date().timeIntervalSince(started))
        }
        print("commit-to-visible delays through NOTIFY (ms): \(delays.map { Int($0 * 1000) })")
        // A short-lived writer (consentctl consent … --store URI) notifies before it goes.
        do {
            let cli = try PostgresConsentStore(address: database.address)
            _ = try cli.append([Self.grant("from-the-cli")], idempotencyKey: nil, payload: nil, now: .now())
        }
        #expect(try Self.eventually(5) {
            try Self.ask(clientB, "from-the-cli").reason == .consentGranted
        }, "a write by a process that exited at once did not wake B (its poll is 30 s)")
        try await a.stop()
        try await b.stop()
    }

    /// Two daemons, an import and a raw writer that pauses randomly before each commit, all
    /// writing at once (grants, withdrawals, erasures, on overlapping subjects): afterwards each
    /// daemon's index equals a fresh load of the database, and every decision each daemon gives
    /// equals the reference decided from that fresh load.
    @Test func twoDaemonsAnImportAndAPausingWriterConverge() async throws {
        let database = try TemporaryPostgres()
        let a = try await DaemonHarness { $0.store = database.uri; $0.storePollInterval = 0.05 }
        let b = try await DaemonHarness { $0.store = database.uri; $0.storePollInterval = 0.05 }
        let store = try PostgresConsentStore(address: database.address)
        // Intern the names the raw writer uses, and learn their ids.
        _ = try store.append([ConsentRecord(subject: "seed", purpose: Self.targeted, choice: .grant, recordedAt: .now(), source: "raw", noticeVersion: 3)],
                             idempotencyKey: nil, payload: nil, now: .now())
        let raw = try database.connect(applicationName: "pausing-writer")
        let purposeID = try raw.column("SELECT id::text FROM keys WHERE kind = 1 AND name = '\(Self.targeted)'")[0]
        let sourceID = try raw.column("SELECT id::text FROM keys WHERE kind = 3 AND name = 'raw'")[0]
        let subjects = (0..<25).map { "conv-\($0)" }
        let file = a.directory.appendingPathComponent("import.jsonl").path
        let lines = (0..<3_000).map { i in
            #"{"subject":"\#(subjects[i % subjects.count])","purpose":"\#(i % 3 == 0 ? "marketing" : Self.targeted)","choice":"\#(i % 4 == 0 ? "deny" : "grant")","at":"2026-01-01T00:00:00Z","notice_version":3}"#
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let group = DispatchGroup()
        let problems = Problems()
        let clients = (try a.client(), try b.client())
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            do { _ = try RecordTransfer.importRecords(from: file, into: store, options: ImportOptions(batchSize: 100)) } catch { problems.note(error) }
        }
        for (index, client) in [clients.0, clients.1].enumerated() {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                for step in 0..<120 {
                    let subject = subjects[(step * 7 + index * 3) % subjects.count]
                    do {
                        if step % 15 == 14 {
                            _ = try client.erase(subject: subject)
                        } else {
                            let choice: Choice = (step + index) % 3 == 0 ? .deny : .grant
                            _ = try client.record([ConsentRecord(subject: subject, purpose: step % 2 == 0 ? "marketing" : Self.targeted, choice: choice,
                                                                 recordedAt: .now(), source: "daemon-\(index)", noticeVersion: 3)])
                        }
                    } catch { problems.note(error) }
                }
            }
        }
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            for step in 0..<60 {
                let subject = subjects[(step * 11) % subjects.count]
                do {
                    try raw.execute("BEGIN")
                    try raw.execute("""
                        SELECT * FROM consentd_append('\(store.storeID)', NULL, '', \(Timestamp.now().microseconds), ARRAY[convert_to('\(subject)', 'UTF8')], ARRAY[\(purposeID)]::int[],
                            ARRAY[0]::int[], ARRAY[\(step % 2 == 0 ? 1 : 2)]::smallint[], ARRAY[\(Timestamp.now().microseconds)]::bigint[],
                            ARRAY[-9223372036854775808]::bigint[], ARRAY[0]::smallint[], ARRAY[\(sourceID)]::int[], ARRAY[3]::bigint[],
                            ARRAY['']::text[], ARRAY['']::text[], ARRAY[false])
                        """)
                    try raw.execute("SELECT pg_sleep(\(Double.random(in: 0...0.02)))")
                    try raw.execute("COMMIT")
                    try raw.execute("SELECT pg_notify('consentd_feed', '')")
                } catch {
                    problems.note(error)
                    _ = try? raw.execute("ROLLBACK")
                }
            }
        }
        group.wait()
        #expect(problems.all.isEmpty, "\(problems.all.prefix(3))")
        let head = try store.lastSequence()
        for daemon in [a, b] {
            #expect(Self.eventually(10) { daemon.daemon.state.feed.appliedSequence == head }, "a daemon did not reach the head \(head)")
        }
        let fresh = try ConsentFeed(store: store, vocabulary: a.daemon.state.feed.index.vocabulary)
        let freshB = try ConsentFeed(store: store, vocabulary: b.daemon.state.feed.index.vocabulary)
        let at = Timestamp.now()
        var context = Self.eea
        context.at = at
        var compared = 0
        for (daemon, reference, client) in [(a, fresh, clients.0), (b, freshB, clients.1)] {
            let set = daemon.daemon.state.policies.set
            for subject in subjects + ["seed"] {
                #expect(Array(daemon.daemon.state.feed.index.snapshot().records(of: subject)) == Array(reference.index.snapshot().records(of: subject)),
                        "\(subject): a daemon's index differs from a fresh load")
                for purpose in ["marketing.email", Self.targeted] {
                    let expected = set.decide(DecisionRequest(subject: subject, purpose: purpose, dataCategory: Self.browsing, context: context),
                                              consent: reference.index.snapshot().records(of: subject), now: at)
                    let answer = try client.check(subject: subject, purpose: purpose, dataCategory: Self.browsing, context: context)
                    #expect(answer.reason.rawValue == Int(expected.reason.rawValue), "\(subject) \(purpose): \(answer.reason) vs \(expected.reason)")
                    compared += 1
                }
            }
        }
        #expect(compared == 104)
        try await a.stop()
        try await b.stop()
    }

    /// The database is dropped and created again under a running daemon, and another store
    /// grows in it past the daemon's cursor (review: the daemon applied the new store's rows on
    /// top of the old index and kept allowing the old grant, and wrote with the old key ids):
    /// the daemon loads the new store whole — the old grant is gone, the new store's records
    /// decide — and writes through it land in the new store with its key ids.
    @Test func aDatabaseReplacedUnderTheDaemonIsLoadedWhole() async throws {
        let database = try TemporaryPostgres()
        let daemon = try await DaemonHarness {
            $0.store = database.uri
            $0.storePollInterval = 0.05
            $0.maximumStaleness = 0.5
        }
        let client = try daemon.client()
        _ = try client.record([Self.grant("bob")])
        #expect(try Self.ask(client, "bob").reason == .consentGranted)
        let admin = try database.connectToServer()
        try admin.execute("DROP DATABASE \(database.name) WITH (FORCE)")
        try admin.execute("CREATE DATABASE \(database.name)")
        let other = try PostgresConsentStore(address: database.address)
        _ = try other.append([ConsentRecord(subject: "t0", purpose: "service.essential", choice: .grant, recordedAt: .now(), source: "web")]
                             + (0..<5).map { Self.grant("t\($0)") }, idempotencyKey: nil, payload: nil, now: .now())
        #expect(try Self.eventually { try Self.ask(client, "t3").reason == .consentGranted }, "the daemon did not load the new store")
        #expect(try Self.ask(client, "bob").reason != .consentGranted, "the old store's grant survived")
        #expect(try client.status().consentStale == false)
        let written = try client.record([Self.withdraw("t3"), Self.grant("carol")])
        #expect(written.sequences == [7, 8])
        #expect(try Self.ask(client, "t3").reason == .consentDenied)
        #expect(try Self.ask(client, "carol").reason == .consentGranted)
        #expect(try other.history(of: "carol").map(\.purpose) == [Self.targeted])
        #expect(try other.history(of: "t3").map(\.purpose) == [Self.targeted, "marketing"])
        try await daemon.stop()
    }

    /// Read-your-writes across daemons: B follows lazily (a 5 s poll), yet a Check carrying the
    /// sequence of A's withdrawal is answered from an index that holds it — B's very next Check.
    @Test func aCheckCarryingAWritesSequenceSeesItOnAnotherDaemon() async throws {
        let database = try TemporaryPostgres()
        let a = try await DaemonHarness { $0.store = database.uri }
        let b = try await DaemonHarness {
            $0.store = database.uri
            $0.storePollInterval = 5
            $0.maximumStaleness = 30
        }
        let (clientA, clientB) = (try a.client(), try b.client())
        for round in 0..<5 {
            let subject = "read-your-writes-\(round)"
            let granted = try clientA.record([Self.grant(subject)]).sequences.last ?? 0
            var context = Self.eea
            context.minSequence = granted
            #expect(try clientB.check(subject: subject, purpose: Self.targeted, dataCategory: Self.browsing, context: context).reason == .consentGranted, "round \(round)")
            let withdrawn = try clientA.record([Self.withdraw(subject)]).sequences.last ?? 0
            context.minSequence = withdrawn
            #expect(try clientB.check(subject: subject, purpose: Self.targeted, dataCategory: Self.browsing, context: context).reason == .consentDenied, "round \(round)")
            let batch = try clientB.checkBatch([(subject, Self.targeted, Self.browsing)], context: context)
            #expect(batch.results.map(\.reason) == [.consentDenied])
        }
        try await a.stop()
        try await b.stop()
    }

    /// The store becomes unreachable (connections refused, the daemon's own ones terminated):
    /// after --max-staleness, decisions that need consent are denied CONSENT_UNAVAILABLE with a
    /// message, decisions that need none are answered, status says so; once the store can be
    /// read again, decisions resume without restarting the daemon.
    @Test func decisionsFailClosedWhileTheStoreCannotBeReadAndResume() async throws {
        let database = try TemporaryPostgres()
        let daemon = try await DaemonHarness {
            $0.store = database.uri
            $0.storePollInterval = 0.05
            $0.maximumStaleness = 0.5
        }
        let client = try daemon.client()
        _ = try client.record([Self.grant("alice")])
        #expect(try Self.ask(client, "alice").reason == .consentGranted)
        let admin = try database.connectToServer()
        try admin.execute("ALTER DATABASE \(database.name) ALLOW_CONNECTIONS false")
        try admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(database.name)'")
        #expect(try Self.eventually { try client.status().consentStale }, "the daemon did not notice that it cannot read the store")
        let check = try Self.ask(client, "alice")
        #expect(check.decision == .deny && check.reason == .consentUnavailable)
        #expect(check.message.contains("last confirmed current"), "\(check.message)")
        // Every path: explain, a batch, ListUses; and what needs no consent is still answered.
        #expect(try client.check(subject: "alice", purpose: Self.targeted, dataCategory: Self.browsing, context: Self.eea, explain: true).reason == .consentUnavailable)
        let batch = try client.checkBatch([("alice", Self.targeted, Self.browsing), ("bob", "service.essential", "user")], context: Self.eea)
        #expect(batch.results.map(\.reason) == [.consentUnavailable, .legalBasis])
        #expect(batch.message.contains("last confirmed current"))
        let uses = try client.listUses(subject: "alice", context: Self.eea)
        #expect(!uses.uses.contains { $0.purpose == Self.targeted } && uses.uses.contains { $0.reason == .legalBasis })
        #expect(uses.message.contains("not listed"))
        #expect(try client.status().consentStalenessSeconds >= 0.5)
        try admin.execute("ALTER DATABASE \(database.name) ALLOW_CONNECTIONS true")
        #expect(try Self.eventually {
            try Self.ask(client, "alice").reason == .consentGranted
        }, "decisions did not resume once the store could be read again")
        #expect(try client.status().consentStale == false)
        try await daemon.stop()
    }
}

/// Errors collected from several threads.
final class Problems: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func note(_ error: Error) { lock.withLock { list.append("\(error)") } }
    var all: [String] { lock.withLock { list } }
}
