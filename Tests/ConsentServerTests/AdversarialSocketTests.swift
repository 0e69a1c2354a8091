import ConsentClient
import ConsentModel
@testable import ConsentReceipts
@testable import ConsentServer
@testable import ConsentStore
import ConsentTesting
import ConsentWire
import GRDB
import ConsentWorkload
import Foundation
import SwiftProtobuf
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One test per class of the outside review (SECURITY.md lists them), each over a real socket
/// with the review's example input and generated variants. Every frame is built as an attacker
/// would: raw bytes where the Swift types would refuse to encode it.
@Suite struct AdversarialSocketTests {
    static let measurement = "marketing.advertising.measurement"

    /// Sends frames on a fresh connection, half-closes, returns every answer (on a thread of
    /// its own: blocking reads must not hold the cooperative pool other tests need).
    static func exchange(_ harness: DaemonHarness, _ frames: [[UInt8]]) async throws -> [Consentd_V1_Response] {
        let socket = harness.socket
        return try await offThePool { _ in
            let connection = try RawConnection(socket)
            for frame in frames { connection.send(frame) }
            connection.finishSending()
            return try responses(in: connection.readToEnd())
        }[0]
    }

    static func frame(_ request: Consentd_V1_Request) throws -> [UInt8] { FrameCodec.frame(try request.serializedBytes()) }

    /// Extreme instants: the ends of Int64 seconds, the ends of the valid range and one past,
    /// the epoch and its neighbours, negative nanos, nanos of a whole second.
    static let extremeTimes: [(seconds: Int64, nanos: Int32)] = [
        (-9_223_372_036_854, 0), (.min, 0), (.max, 999_999_999), (9_223_372_036_854, 0), (1 << 57, 0), (-(1 << 57), 0),
        (-62_135_596_800, 0), (-62_135_596_801, 999_999_999), (253_402_300_799, 999_999_999), (253_402_300_800, 0),
        (0, 0), (0, 1), (-1, 999_999_999), (0, -1), (0, 1_000_000_000), (0, .min), (0, .max), (1_700_000_000, -5),
    ]

    static func checkWithAt(_ id: UInt64, seconds: Int64, nanos: Int32, explain: Bool) -> Consentd_V1_Request {
        request(id) {
            $0.check = Consentd_V1_CheckRequest.with {
                $0.subjectID = "alice"
                $0.purpose = measurement
                $0.dataCategory = "user.behavior"
                $0.context.jurisdiction = "DE"
                $0.context.at = Google_Protobuf_Timestamp(seconds: seconds, nanos: nanos)
                $0.explain = explain
            }
        }
    }

    // MARK: 1. one frame must not kill the daemon

    @Test func extremeInstantsAreRefusedOrAnsweredNeverFatal() async throws {
        let receipts = "/tmp/cd-adv-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.subject = .raw
        }
        _ = try harness.client().record([grant("alice", Self.measurement)])
        enum Kind { case decision, record, expiry, history }
        var frames: [[UInt8]] = []
        var expectations: [UInt64: (kind: Kind, time: Timestamp?)] = [:]
        var id: UInt64 = 0
        func add(_ kind: Kind, _ time: Timestamp?, _ body: (inout Consentd_V1_Request) -> Void) throws {
            id += 1
            frames.append(try Self.frame(request(id, body)))
            expectations[id] = (kind, time)
        }
        for (seconds, nanos) in Self.extremeTimes {
            let time = Timestamp(seconds: seconds, nanos: nanos)
            let wire = Google_Protobuf_Timestamp(seconds: seconds, nanos: nanos)
            for explain in [false, true] {
                try add(.decision, time) {
                    $0.check = Self.checkWithAt(0, seconds: seconds, nanos: nanos, explain: explain).check
                }
                // The same instant in a batch and a ListUses.
                try add(.decision, time) {
                    $0.checkBatch.items = [Consentd_V1_CheckItem.with { $0.subjectID = "alice"; $0.purpose = Self.measurement; $0.dataCategory = "user.behavior" }]
                    $0.checkBatch.context.at = wire
                }
                try add(.decision, time) {
                    $0.listUses.subjectID = "alice"
                    $0.listUses.context.at = wire
                }
            }
            // And as a record's times and a History instant.
            try add(.record, time) {
                $0.recordConsent.records = [Consentd_V1_ConsentRecord.with {
                    $0.subjectID = "alice"; $0.purpose = Self.measurement; $0.choice = .grant; $0.recordedAt = wire
                }]
            }
            try add(.expiry, time) {
                $0.recordConsent.records = [Consentd_V1_ConsentRecord.with {
                    $0.subjectID = "alice"; $0.purpose = Self.measurement; $0.choice = .grant; $0.expiresAt = wire
                }]
            }
            try add(.history, time) {
                $0.history.subjectID = "alice"
                $0.history.at = wire
            }
        }
        let answers = try await Self.exchange(harness, frames)
        // Decisions are answered inline, writes and History on the pool: match by id.
        #expect(answers.map(\.id).sorted() == Array(1...id), "every frame answered; the daemon is alive")
        let now = Timestamp.now()
        for answer in answers {
            guard let (kind, time) = expectations[answer.id] else { continue }
            var acceptable: Bool
            switch kind {
            case .decision, .history: acceptable = time != nil
            case .record: acceptable = time.map { $0 <= now.adding(TimeSpan(microseconds: 300_000_000)) } ?? false
            case .expiry: acceptable = time.map { $0 > now } ?? false
            }
            if case let .error(error)? = answer.result {
                #expect(!acceptable, "\(kind) at \(time.map(\.microseconds).map(String.init) ?? "out of range") refused: \(error.message)")
                #expect(error.code == .invalidArgument)
            } else {
                #expect(acceptable, "\(kind) at \(time.map(\.microseconds).map(String.init) ?? "out of range") was answered")
            }
        }
        // Still serving, and the receipts written are readable and replay cleanly (the
        // store's check answers are re-decidable).
        #expect(try harness.client().status().counters.decisions > 0)
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let report = try ReceiptReplayer(directory: receipts, store: SQLiteConsentStore(path: harness.daemon.state.configuration.store)).run()
        #expect(report.isClean, "\(report.mismatches.prefix(3))")
    }

    /// A record already in the store at an extreme instant (written by an older version or
    /// another process) does not trap the Checks, explains and receipts of its subject.
    @Test func storedRecordsAtExtremeInstantsDoNotTrapLaterChecks() async throws {
        let directory = "/tmp/cd-adv-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/consentd.sqlite"
        let store = try SQLiteConsentStore(path: path)
        _ = try store.append([ConsentRecord(subject: "old", purpose: Self.measurement, choice: .grant, recordedAt: Timestamp(seconds: 1_700_000_000))])
        // Bypass validation as a foreign writer would: extreme times straight into the table.
        try await store.pool.write { db in
            try db.execute(sql: "UPDATE consent_records SET recorded_at = ?, expires_at = ?", arguments: [Int64.min + 1, Int64.max])
            try db.execute(sql: "INSERT INTO consent_records SELECT subject, sequence + 1, purpose_id, data_id, 2, ?, NULL, legal_basis, source_id, notice_version, jurisdiction, evidence, stored_at FROM consent_records",
                           arguments: [Int64.max])
            try db.execute(sql: "UPDATE store_meta SET value = 2 WHERE key = 'last_sequence'")
        }
        let receipts = directory + "/receipts"
        let harness = try await DaemonHarness {
            $0.store = path
            $0.receipts.directory = receipts
        }
        let client = try harness.client()
        for explain in [false, true] {
            for jurisdiction in ["DE", "US-CA", "US-ME"] {
                let answer = try client.check(subject: "old", purpose: Self.measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: jurisdiction), explain: explain)
                #expect(answer.decision == .allow || answer.decision == .deny)
            }
        }
        // The fast path's answer with the relied-on record parses, and the stream stays in step.
        let connection = try RawConnection(harness.socket)
        for id in 1...3 as ClosedRange<UInt64> { connection.send(try Self.frame(checkRequest(id, "old", Self.measurement, "user.behavior"))) }
        connection.finishSending()
        #expect(try responses(in: connection.readToEnd()).map(\.id) == [1, 2, 3])
        _ = try client.listUses(subject: "old")
        try await harness.stop(keepFiles: true)
        try? FileManager.default.removeItem(at: harness.directory)
    }

    // MARK: 2. a NUL byte must not move consent between customers

    @Test func controlCharactersInIdentifiersAreRefusedAndTouchNoOneElse() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        _ = try client.record([grant("v2", Self.measurement, .deny)])
        let before = try client.history(subject: "v2").records
        // The review's inputs and generated variants: every C0 control, DEL, C1 controls, in
        // every position of an id that is otherwise a real customer's.
        var hostile: [String] = ["victim\u{0}x", "v2\u{0}y", "\u{0}", "v2\u{0}"]
        for scalar in Array(0x00...0x1F) + [0x7F] + Array(0x80...0x9F) {
            let control = String(UnicodeScalar(UInt32(scalar))!)
            hostile += ["v2" + control, control + "v2", "v" + control + "2"]
        }
        for (index, subject) in hostile.enumerated() {
            // RecordConsent: refused, nothing stored.
            #expect(throws: ConsentClientError.self, "record \(subject.debugDescription)") {
                try client.record([grant(subject, Self.measurement)], idempotencyKey: "k\(index)")
            }
            // Erase and History: refused, v2's records stay.
            #expect(throws: ConsentClientError.self) { try client.erase(subject: subject) }
            #expect(throws: ConsentClientError.self) { try client.history(subject: subject) }
            // Check: denied as an invalid request (fail closed), never another subject's answer.
            let answer = try client.check(subject: subject, purpose: Self.measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE"))
            #expect(answer.decision == .deny)
            #expect(answer.reason == .invalidRequest)
            // And says why.
            #expect(answer.message.hasPrefix("subject_id "), "\(answer.message.debugDescription)")
        }
        // An idempotency key with a control character anywhere is refused too, and stores nothing.
        for scalar in Array(0x00...0x1F) + [0x7F] + Array(0x80...0x9F) {
            let control = String(UnicodeScalar(UInt32(scalar))!)
            for key in ["key" + control, control + "key", "k" + control + "ey"] {
                #expect(throws: ConsentClientError.self, "key \(key.debugDescription)") { try client.record([grant("v3", Self.measurement)], idempotencyKey: key) }
            }
        }
        #expect(try client.history(subject: "v2").records == before)
        #expect(try client.history(subject: "victim").records.isEmpty)
        #expect(try client.check(subject: "victim", purpose: Self.measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE")).reason == .noConsent)
        #expect(try client.history(subject: "v3").records.isEmpty)
        try await harness.stop()
    }

    // MARK: 3. canonically equivalent subjects are different customers

    @Test func canonicallyEquivalentSubjectsNeverShareConsent() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        // Pairs (and triples) that Swift's String == treats as equal and bytes do not.
        let families: [[String]] = [
            ["jos\u{E9}", "jose\u{301}"], ["\u{212B}", "\u{C5}", "A\u{30A}"], ["\u{1E9B}\u{323}", "\u{17F}\u{323}\u{307}"],
            ["\u{FB01}x", "fix"], ["\u{3060}", "\u{305F}\u{3099}"],
        ]
        for family in families {
            // In one write (one catch-up batch) and in separate writes: both orders.
            let records = family.enumerated().map { index, subject in grant(subject, Self.measurement, index == 0 ? .grant : .deny) }
            _ = try client.record(records)
            for (index, subject) in family.enumerated() {
                let history = try client.history(subject: subject).records
                #expect(history.count == 1, "\(subject.unicodeScalars.map { String($0.value, radix: 16) })")
                #expect(history.first.map { Array($0.subjectID.utf8) } == Array(subject.utf8))
                let answer = try client.check(subject: subject, purpose: Self.measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE"))
                #expect(answer.reason == (index == 0 ? .consentGranted : .consentDenied), "\(subject.debugDescription)")
            }
            // A later withdrawal of one applies to that one only.
            _ = try client.record([grant(family[0], Self.measurement, .deny)])
            for subject in family.dropFirst() {
                #expect(try client.history(subject: subject).records.count == 1)
            }
            // Erasing one leaves the others.
            _ = try client.erase(subject: family[1])
            #expect(try client.history(subject: family[0]).records.count == 2)
            #expect(try client.history(subject: family[1]).records.isEmpty)
        }
        // The index the daemon followed equals a fresh load of the store.
        let fresh = try ConsentFeed(store: SQLiteConsentStore(path: harness.daemon.state.configuration.store), vocabulary: Vocabulary()).index.snapshot()
        #expect(fresh.recordCount == harness.daemon.state.feed.index.snapshot().recordCount)
        try await harness.stop()
    }

    // MARK: 5. the answer to a record at the epoch is a well-formed frame

    @Test func relyOnRecordsAtBoundaryInstantsAndTheStreamStaysInStep() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        // The epoch, one microsecond and one second either side, the ends of the valid range.
        let instants: [Int64] = [0, 1, -1, 1_000_000, -1_000_000, 999_999, -999_999, Timestamp.minimumValid.microseconds]
        for (index, micros) in instants.enumerated() {
            var record = ConsentRecord(subject: "epoch\(index)", purpose: Self.measurement, choice: .grant, recordedAt: Timestamp(microseconds: micros), source: "web")
            if index % 2 == 0 { record.expiresAt = Timestamp.maximumValid }
            _ = try client.record([record])
        }
        // Pipelined fast-path Checks (decided at an instant after every record), every answer
        // checked against the general path's answer byte for byte via SwiftProtobuf decoding.
        let connection = try RawConnection(harness.socket)
        var id: UInt64 = 0
        for (index, _) in instants.enumerated() {
            for _ in 0..<3 {
                id += 1
                connection.send(try Self.frame(checkRequest(id, "epoch\(index)", Self.measurement, "user.behavior")))
            }
        }
        connection.finishSending()
        let answers = try responses(in: connection.readToEnd())
        #expect(answers.map(\.id) == Array(1...id))
        for (offset, answer) in answers.enumerated() {
            let index = offset / 3
            #expect(answer.check.reason == .consentGranted)
            #expect(answer.check.consentRecord.recordedAt.validatedModel == Timestamp(microseconds: instants[index]))
            #expect(answer.check.consentRecord.hasRecordedAt)
        }
        try await harness.stop()
    }

    // MARK: 6. explain discloses no consent history to a check-role peer

    @Test func explainWithholdsRecordTracesFromCheckers() async throws {
        // A role map in which this process (root, the daemon's own uid) may only check.
        let harness = try await DaemonHarness {
            $0.allowAnyAdmin = false
        }
        let store = harness.daemon.state.feed
        _ = try store.record([grant("carol", Self.measurement), grant("carol", "marketing.email", .deny)])
        var processor = harness.daemon.state.makeProcessor()
        var explained = checkRequest(1, "carol", Self.measurement, "user.behavior")
        explained.check.explain = true
        // As an admin: the full trace.
        processor.peer = PeerCredentials(pid: 1, uid: 0, gid: 0)
        guard let adminAnswer = processor.process(explained).response else { Issue.record("not answered inline"); return }
        #expect(adminAnswer.check.explanation.records.count == 2)
        #expect(adminAnswer.check.explanation.text.contains("marketing.email"))
        // As a peer with the check role only: rules, the decision and its one relied-on record;
        // no other record of the subject.
        processor.peer = PeerCredentials(pid: 1, uid: 54321, gid: 54321)
        #expect(processor.roles.check && !processor.roles.admin)
        guard let checkerAnswer = processor.process(explained).response else { Issue.record("not answered inline"); return }
        #expect(checkerAnswer.check.explanation.records.isEmpty)
        #expect(!checkerAnswer.check.explanation.rules.isEmpty)
        #expect(!checkerAnswer.check.explanation.text.contains("marketing.email"))
        #expect(checkerAnswer.check.explanation.text.contains("withheld"))
        #expect(checkerAnswer.check.decision == adminAnswer.check.decision)
        #expect(checkerAnswer.check.reason == adminAnswer.check.reason)
        // History stays admin-only.
        guard let history = processor.process(request(2) { $0.history.subjectID = "carol" }).response else { Issue.record("not answered inline"); return }
        #expect(history.error.code == .permissionDenied)
        try await harness.stop()
    }

    // MARK: 7. memory per connection is bounded

    @Test func oversizedBatchesAndWritesAreRefusedFromTheirShape() async throws {
        let harness = try await DaemonHarness { $0.maximumBatchItems = 100 }
        // ~1 MiB of empty items: 2 bytes each on the wire.
        var batch: [UInt8] = []
        for _ in 0..<500_000 { batch += [0x0A, 0x00] }
        var body: [UInt8] = [0x08, 0x07, 0x1A]
        FrameCodec.appendVarint(UInt64(batch.count), to: &body)
        body += batch
        var records: [UInt8] = []
        for _ in 0..<20_000 { records += [0x0A, 0x00] }
        var write: [UInt8] = [0x08, 0x08, 0x2A]
        FrameCodec.appendVarint(UInt64(records.count), to: &write)
        write += records
        let answers = try await Self.exchange(harness, [FrameCodec.frame(body), FrameCodec.frame(write)])
        #expect(answers.map(\.id) == [7, 8])
        #expect(answers.first?.error.code == .invalidArgument)
        #expect(answers.first?.error.message.contains("500000 items in one CheckBatch; the limit is 100") == true)
        #expect(answers.last?.error.message.contains("20000 records in one RecordConsent; the limit is 10000") == true)
        // At the limit: answered.
        let items = (0..<100).map { ("s\($0)", Self.measurement, "user.behavior") }
        #expect(try harness.client().checkBatch(items).results.count == 100)
        try await harness.stop()
    }

    @Test func aPeerThatDoesNotReadIsNotBufferedWithoutBound() async throws {
        let harness = try await DaemonHarness { $0.maximumPendingOutput = 64 << 10 }
        // 1 MiB of 3-byte Status frames from a peer that never reads.
        let status: [UInt8] = [0x02, 0x42, 0x00]
        var flood: [UInt8] = []
        for _ in 0..<(1 << 20) / 3 { flood += status }
        let connection = try RawConnection(harness.socket)
        var nonBlocking = fcntl(connection.fd, F_GETFL)
        nonBlocking |= O_NONBLOCK
        _ = fcntl(connection.fd, F_SETFL, nonBlocking)
        let fd = connection.fd
        let frames = flood
        let sent = try await offThePool { _ in
            var sent = 0
            var stalls = 0
            while sent < frames.count && stalls < 200 {
                let count = frames[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if count > 0 { sent += count; stalls = 0 } else { stalls += 1; usleep(5000) }
            }
            return sent
        }[0]
        // The daemon stopped taking frames: far fewer than were sent were answered.
        let answered = harness.daemon.state.counters.requests.load(ordering: .relaxed)
        #expect(answered < UInt64(flood.count / 3), "the daemon stops reading a peer that does not read")
        #expect(sent < flood.count, "the sender was held back by the socket, not buffered by the daemon")
        // Another client is served meanwhile.
        #expect(try harness.client().status().version == ConsentDaemon.version)
        try await harness.stop()
    }

    // MARK: 11. smaller findings

    @Test func recordsFromTheFutureAreRefused() async throws {
        let harness = try await DaemonHarness { $0.maximumClockSkew = 300 }
        let client = try harness.client()
        let now = Timestamp.now()
        for ahead: Int64 in [301, 3600, 86_400 * 365 * 100] {
            var record = grant("future", Self.measurement)
            record.recordedAt = now.adding(TimeSpan(microseconds: ahead * 1_000_000))
            #expect {
                _ = try client.record([record])
            } throws: { error in "\(error)".contains("in the future") }
        }
        var withinSkew = grant("future", Self.measurement)
        withinSkew.recordedAt = now.adding(TimeSpan(microseconds: 60_000_000))
        _ = try client.record([withinSkew])
        #expect(try client.history(subject: "future").records.count == 1)
        try await harness.stop()
    }

    @Test func jurisdictionsAreASCIIAndCaseFoldedOnASCIIOnly() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        for code in ["u\u{17F}", "\u{17F}u", "U\u{17F}", "us-c\u{212A}", "d\u{0130}", "\u{FF35}\u{FF33}", "US\u{0}", "de\u{301}"] {
            let answer = try client.check(subject: "j", purpose: "service.essential", dataCategory: "user", context: RequestContext(jurisdiction: code))
            #expect(answer.reason == .invalidRequest, "\(code.debugDescription)")
            #expect(answer.message.hasPrefix("context.jurisdiction "), "\(answer.message.debugDescription)")
        }
        for code in ["us", "Us", "de", "us-ca"] {
            let answer = try client.check(subject: "j", purpose: "service.essential", dataCategory: "user", context: RequestContext(jurisdiction: code))
            #expect(answer.reason != .invalidRequest, "\(code)")
        }
        try await harness.stop()
    }

    @Test func unknownFieldsAnywhereGetUnknownField() async throws {
        let harness = try await DaemonHarness()
        // An unknown field (number 9, varint) appended inside context.at, inside context, inside
        // a batch item, inside a record's recorded_at, inside History.at.
        func withUnknown<M: Message>(_ message: M) throws -> M {
            try M(serializedBytes: (try message.serializedBytes() as [UInt8]) + [0x48, 0x01])
        }
        var inAt = Self.checkWithAt(1, seconds: 1_700_000_000, nanos: 0, explain: false)
        inAt.check.context.at = try withUnknown(inAt.check.context.at)
        var inContext = checkRequest(2, "alice", Self.measurement, "user.behavior")
        inContext.check.context = try withUnknown(inContext.check.context)
        var inItem = request(3) {
            $0.checkBatch.items = [Consentd_V1_CheckItem.with { $0.subjectID = "a"; $0.purpose = Self.measurement; $0.dataCategory = "user" }]
        }
        inItem.checkBatch.items[0] = try withUnknown(inItem.checkBatch.items[0])
        var inRecord = request(4) {
            $0.recordConsent.records = [Consentd_V1_ConsentRecord.with {
                $0.subjectID = "a"; $0.purpose = Self.measurement; $0.choice = .grant
                $0.recordedAt = Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 0)
            }]
        }
        inRecord.recordConsent.records[0].recordedAt = try withUnknown(inRecord.recordConsent.records[0].recordedAt)
        var inHistory = request(5) { $0.history.subjectID = "a"; $0.history.at = Google_Protobuf_Timestamp(seconds: 1, nanos: 0) }
        inHistory.history.at = try withUnknown(inHistory.history.at)
        let answers = try await Self.exchange(harness, try [inAt, inContext, inItem, inRecord, inHistory].map(Self.frame))
        #expect(answers.map(\.id) == [1, 2, 3, 4, 5])
        #expect(answers.allSatisfy { $0.error.code == .unknownField }, "\(answers.map(\.error.code))")
        #expect(try harness.client().history(subject: "a").records.isEmpty)
        try await harness.stop()
    }

    @Test func onePeerCannotTakeEveryConnectionSlot() async throws {
        let harness = try await DaemonHarness {
            $0.maximumConnections = 8
            $0.maximumConnectionsPerUID = 5
        }
        let kept = try (0..<5).map { _ in try harness.client() }
        for client in kept { _ = try client.status() }
        let extra = try RawConnection(harness.socket)
        let answers = try responses(in: extra.readToEnd())
        #expect(answers.first?.error.code == .resourceExhausted)
        #expect(answers.first?.error.message.contains("per uid") == true)
        // Closing one frees its slot for the same uid.
        kept[0].close()
        try await Task.sleep(for: .milliseconds(200))
        #expect(try harness.client().status().version == ConsentDaemon.version)
        try await harness.stop()
    }

    // MARK: 8, 9: files are private; erasure leaves no copy

    @Test func storeAndReceiptFilesArePrivateAndErasureLeavesNoCopy() async throws {
        let previous = umask(0o022)
        defer { umask(previous) }
        let receipts = "/tmp/cd-adv-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness { $0.receipts.directory = receipts }
        let client = try harness.client()
        let secret = "erase-me-\(UUID().uuidString)"
        for index in 0..<40 {
            _ = try client.record([grant(secret, Self.measurement, index % 2 == 0 ? .grant : .deny)], idempotencyKey: "w-\(index)")
            _ = try client.check(subject: secret, purpose: Self.measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE"))
        }
        // A write that holds the subject's record after another subject's: its key goes too.
        _ = try client.record([grant("bystander", Self.measurement), grant(secret, Self.measurement)], idempotencyKey: "mixed")
        let store = harness.daemon.state.configuration.store
        for path in [store, store + "-wal", store + "-shm"] where FileManager.default.fileExists(atPath: path) {
            var info = stat()
            #expect(stat(path, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o600, "\(path) has mode \(String(info.st_mode & 0o777, radix: 8))")
        }
        _ = try client.erase(subject: secret)
        for path in [store, store + "-wal"] where FileManager.default.fileExists(atPath: path) {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(path) still holds the erased subject")
        }
        let idempotencyKeys = try await (harness.daemon.state.feed.store as! SQLiteConsentStore).pool.read { db in try String.fetchAll(db, sql: "SELECT key FROM idempotency_keys") }
        #expect(idempotencyKeys.isEmpty, "\(idempotencyKeys)")
        // The bystander keeps its record; the erased subject has none.
        #expect(try client.history(subject: "bystander").records.count == 1)
        #expect(try client.history(subject: secret).records.isEmpty)
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        // Receipts name the subject by its keyed hash by default: the erased id is not in them.
        for file in ReceiptFiles.list(receipts) {
            var info = stat()
            #expect(stat(file.path, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o600)
            let text = try String(contentsOfFile: file.path, encoding: .utf8)
            #expect(!text.contains(secret))
        }
        var directoryInfo = stat()
        #expect(stat(receipts, &directoryInfo) == 0)
        #expect(directoryInfo.st_mode & 0o077 == 0, "the receipts directory is private")
    }

    // MARK: 10. a daemon removes only its own socket

    @Test func aStoppingDaemonLeavesItsSuccessorsSocket() async throws {
        let first = try await DaemonHarness()
        let path = first.socket
        var info = stat()
        #expect(lstat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o660)
        // The operator (or a new deployment) removes the socket and starts a successor on it
        // while the first daemon is still stopping.
        unlink(path)
        let second = try await DaemonHarness {
            $0.socket = path
            $0.store = first.directory.appendingPathComponent("second.sqlite").path
        }
        try await first.stop(keepFiles: true)
        #expect(lstat(path, &info) == 0, "the successor's socket survives its predecessor's stop")
        #expect(try ConsentClient(socketPath: path).status().version == ConsentDaemon.version)
        try await second.stop()
        #expect(lstat(path, &info) != 0, "the successor removes its own socket")
        // No staging directory is left beside the socket.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: first.directory.path).filter { $0.hasPrefix(".consentd-sock") }
        #expect(leftovers.isEmpty)
        try? FileManager.default.removeItem(at: first.directory)
    }

    // MARK: receipts are tamper-evident

    @Test func aDeletedInsertedOrReorderedReceiptLineIsReportedAtItsPlace() async throws {
        let receipts = "/tmp/cd-adv-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness { $0.receipts.directory = receipts }
        let client = try harness.client()
        _ = try client.record([grant("alice", Self.measurement)])
        for round in 0..<30 {
            for subject in ["alice", "bob", "carol"] {
                _ = try client.check(subject: subject, purpose: Self.measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: round % 2 == 0 ? "DE" : "US-CA"))
            }
        }
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let store = try SQLiteConsentStore(path: harness.daemon.state.configuration.store)
        var report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.isClean && report.unsealed.isEmpty && report.sealedBlocks > 0)
        let file = try #require(ReceiptFiles.list(receipts).first?.path)
        let original = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let receiptIndices = original.indices.filter { original[$0].hasPrefix(#"{"id""#) }
        var generator = SplitMix(seed: 11)
        func write(_ lines: [String]) throws { try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8) }
        for _ in 0..<12 {
            var lines = original
            let victim = receiptIndices[Int(generator.next() % UInt64(receiptIndices.count))]
            switch generator.next() % 3 {
            case 0: lines.remove(at: victim)                                  // deleted
            case 1: lines.insert(lines[victim], at: victim)                   // inserted (a duplicate)
            default:                                                          // reordered
                guard let other = receiptIndices.first(where: { $0 != victim && original[$0] != original[victim] }) else { continue }
                lines.swapAt(victim, other)
            }
            try write(lines)
            report = try ReceiptReplayer(directory: receipts, store: store).run()
            let chain = report.mismatches.filter { $0.message.hasPrefix("hash chain:") }
            #expect(!chain.isEmpty, "a tampered line at \(victim + 1) went unnoticed")
            // The finding names the lines of the file around the change.
            #expect(chain.contains { $0.location.hasPrefix("receipts-000001.jsonl:") })
        }
        try write(original)
        #expect(try ReceiptReplayer(directory: receipts, store: store).run().isClean)
    }

    // MARK: found by the adversarial review of this change

    @Test func sealedReceiptsRemovedFromTheEndAreNoticedThroughTheStoresAnchor() async throws {
        let receipts = "/tmp/cd-adv-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let directory = "/tmp/cd-adv-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let storePath = directory + "/consentd.sqlite"
        func run(_ checks: Int) async throws {
            let harness = try await DaemonHarness {
                $0.receipts.directory = receipts
                $0.store = storePath
            }
            let client = try harness.client()
            for index in 0..<checks {
                _ = try client.check(subject: "s\(index)", purpose: Self.measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE"))
            }
            try await harness.stop()
        }
        try await run(10)
        let store = try SQLiteConsentStore(path: storePath)
        var report = try ReceiptReplayer(directory: receipts, store: store).run()
        // Subjects that never had a record replay exactly, hashed or not: a strict replay of an
        // untouched directory is clean.
        #expect(report.isClean && report.unverifiable.isEmpty && report.unsealed.isEmpty, "\(report.mismatches) \(report.unverifiable.prefix(2))")
        #expect(report.matched == 10)
        // Delete the last four sealed blocks (receipt + seal each): the chain alone is whole.
        let file = try #require(ReceiptFiles.list(receipts).last?.path)
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map(String.init)
        try (lines.dropLast(8).joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.mismatches.contains { $0.message.contains("removed from the end") }, "\(report.mismatches)")
        // A daemon started on the shortened files records the break before it writes on.
        try await run(3)
        report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.mismatches.contains { $0.message.contains("found at start-up") }, "\(report.mismatches)")
    }

    @Test func reviewFindingsAtTheBoundary() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        // A negative legal basis is not consent.
        var record = Consentd_V1_ConsentRecord.with { $0.subjectID = "lb"; $0.purpose = Self.measurement; $0.choice = .grant }
        record.legalBasis = Consentd_V1_LegalBasis(rawValue: -5)!
        // The notice version that means "unknown" inside the index is refused.
        let notice = Consentd_V1_ConsentRecord.with { $0.subjectID = "nv"; $0.purpose = Self.measurement; $0.choice = .grant; $0.noticeVersion = .max }
        // A channel over 64 bytes shared by a batch's items: each item is INVALID_REQUEST.
        var batch = request(3) {
            $0.checkBatch.items = (0..<500).map { index in Consentd_V1_CheckItem.with { $0.subjectID = "s\(index)"; $0.purpose = Self.measurement; $0.dataCategory = "user.behavior" } }
            $0.checkBatch.context.channel = String(repeating: "w", count: 200_000)
        }
        batch.checkBatch.context.jurisdiction = "DE"
        // A group field (no consentd.v1 message has one) inside a batch of too many items.
        var grouped: [UInt8] = [0x08, 0x04, 0x1A]
        var inner: [UInt8] = [0x0B, 0x0C]  // field 1, start group; end group
        for _ in 0..<100 { inner += [0x0A, 0x00] }
        FrameCodec.appendVarint(UInt64(inner.count), to: &grouped)
        grouped += inner
        // An id written as a ten-byte varint whose last byte has excess bits (decoders accept it):
        // the item count is still found before decoding.
        var longID: [UInt8] = [0x08, 0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7F, 0x1A]
        var items: [UInt8] = []
        for _ in 0..<20_000 { items += [0x0A, 0x00] }
        FrameCodec.appendVarint(UInt64(items.count), to: &longID)
        longID += items
        // A subject that is not UTF-8: answered, and the connection stays open.
        var badUTF8: [UInt8] = [0x08, 0x06, 0x12]
        let check: [UInt8] = [0x0A, 0x02, 0xC0, 0xAF, 0x12, 0x01, 0x6D, 0x1A, 0x01, 0x75]
        FrameCodec.appendVarint(UInt64(check.count), to: &badUTF8)
        badUTF8 += check
        let answers = try await Self.exchange(harness, [
            try Self.frame(request(1) { $0.recordConsent.records = [record] }),
            try Self.frame(request(2) { $0.recordConsent.records = [notice] }),
            try Self.frame(batch), FrameCodec.frame(grouped), FrameCodec.frame(longID), FrameCodec.frame(badUTF8),
            try Self.frame(request(7) { $0.status = Consentd_V1_StatusRequest() }),
        ])
        let byID = Dictionary(answers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byID[1]?.error.code == .invalidArgument, "\(String(describing: byID[1]))")
        #expect(byID[2]?.error.code == .invalidArgument)
        #expect(byID[3]?.checkBatch.results.count == 500)
        #expect(byID[3]?.checkBatch.results.allSatisfy { $0.reason == .invalidRequest } == true)
        #expect(byID[3]?.checkBatch.message.hasPrefix("items[0]: context.channel ") == true, "\(byID[3]?.checkBatch.message.debugDescription ?? "")")
        #expect(byID[4]?.error.code == .unknownField)
        #expect(answers.contains { $0.error.message.contains("20000 items in one CheckBatch") })
        #expect(byID[6]?.error.code == .invalidArgument)
        #expect(byID[6]?.error.message.contains("UTF-8") == true)
        #expect(byID[7]?.status.version == ConsentDaemon.version, "the connection stayed open")
        #expect(try client.history(subject: "lb").records.isEmpty)
        #expect(try client.history(subject: "nv").records.isEmpty)
        try await harness.stop()
    }
}

/// A small seeded generator (SplitMix64), independent of the system's.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension AdversarialSocketTests {
    // MARK: timing: the daemon's own holds never count against the peer

    /// Review 21 F1: a frame begun before the daemon held reading (its in-flight limit reached
    /// by a write waiting for the store's lock) is not late when the hold ends: the peer sent it
    /// on time, and it is answered, as is the write.
    @Test func aFrameBegunBeforeAnInFlightHoldIsAnsweredNotRefusedAsLate() async throws {
        let harness = try await DaemonHarness {
            $0.maximumInFlight = 1
            $0.frameTimeout = 1
        }
        // Another writer holds the store's write lock for 2 s: the RecordConsent waits in the pool.
        let queue = try DatabaseQueue(path: harness.directory.appendingPathComponent("consentd.sqlite").path)
        let locked = DispatchSemaphore(value: 0)
        let holder = Thread {
            try? queue.inTransaction(.immediate) { _ in
                locked.signal()
                sleep(2)
                return .commit
            }
        }
        holder.start()
        locked.wait()
        let write = try Self.frame(request(1) {
            $0.recordConsent.records = [Consentd_V1_ConsentRecord.with {
                $0.subjectID = "held"; $0.purpose = Self.measurement; $0.choice = .grant
                $0.recordedAt = Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 0)
            }]
        })
        let check = try Self.frame(checkRequest(2, "held", Self.measurement, "user.behavior"))
        let socket = harness.socket
        let answers = try await offThePool { _ in
            let connection = try RawConnection(socket)
            connection.send(write + Array(check[..<5]))
            usleep(50_000)
            connection.send(Array(check[5...]))
            connection.finishSending()
            return try responses(in: connection.readToEnd())
        }[0]
        // Writes are answered when they finish, decisions at once: by id, not in order.
        #expect(answers.map(\.id).sorted() == [1, 2], "\(answers)")
        #expect(answers.allSatisfy { if case .error? = $0.result { false } else { true } }, "\(answers.map(\.error.message))")
        #expect(try harness.client().history(subject: "held").records.count == 1)
        try await harness.stop()
    }
}
