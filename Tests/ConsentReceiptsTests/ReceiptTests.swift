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

@Suite(.serialized) struct ReceiptTests {
    @Test func everyDecisionUnderLoadGetsAReceiptAndShutdownFlushesThem() async throws {
        let receipts = "/tmp/cd-receipts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness { $0.receipts.directory = receipts }
        let setup = try harness.client()
        _ = try setup.record((0..<50).map { grant("r\($0 * 2)", measurement) })

        // Two connections pipelining plain Checks (fast path), CheckBatches (fast path), and
        // explained Checks (general path) at once.
        let decided = Tally()
        _ = try await offThePool(threads: 2) { connection in
            let client = try harness.client()
            for round in 0..<20 {
                for i in 0..<200 {
                    var check = checkRequest(0, "r\((i + round) % 100)", measurement, "user.behavior")
                    if i % 50 == 0 { check.check.explain = true }
                    try client.send(check)
                }
                var batch = Consentd_V1_Request()
                batch.checkBatch = Consentd_V1_CheckBatchRequest.with {
                    $0.context.jurisdiction = "FR"
                    $0.items = (0..<20).map { j in Consentd_V1_CheckItem.with { $0.subjectID = "r\(j + connection)"; $0.purpose = measurement; $0.dataCategory = "user.behavior" } }
                }
                try client.send(batch)
                try client.flush()
                for _ in 0..<201 {
                    let response = try client.receive()
                    if case .check? = response.result { decided.value.add(1, ordering: .relaxed) } else { decided.value.add(response.checkBatch.results.count, ordering: .relaxed) }
                }
            }
        }
        let status = try setup.status()
        #expect(decided.value.load(ordering: .relaxed) == 2 * 20 * 220)
        try await harness.stop()  // graceful: the writer drains the queue before the daemon exits

        let directory = ReceiptDirectory(path: receipts)
        let lines = directory.receipts
        #expect(UInt64(lines.count) == status.counters.decisions)
        #expect(lines.count == 2 * 20 * 220)
        #expect(directory.droppedInGaps == 0)
        #expect(Set(lines.compactMap { $0["id"] as? String }).count == lines.count, "decision ids are unique")
        let kinds = Dictionary(grouping: lines, by: { $0["kind"] as? String ?? "" }).mapValues(\.count)
        #expect(kinds["batch"] == 2 * 20 * 20)
        #expect(kinds["check"] == 2 * 20 * 200)
        #expect(lines.contains { $0["decision"] as? String == "allow" } && lines.contains { $0["decision"] as? String == "deny" })
    }

    @Test func dropModeCountsExactlyTheReceiptsNotWritten() async throws {
        let receipts = "/tmp/cd-receipts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.queueCapacity = 16
            $0.receipts.whenFull = .drop
        }
        let writer = try #require(harness.daemon.receiptWriter)
        writer.setPaused(true)
        let client = try harness.client()
        for i in 0..<100 { try client.send(checkRequest(0, "s\(i)", measurement, "user.behavior")) }
        try client.flush()
        for _ in 0..<100 { _ = try client.receive() }
        var status = try client.status()
        #expect(status.counters.receiptsDropped == 84)
        #expect(status.receiptsQueued == 16)
        writer.setPaused(false)
        // Now with the writer running and a tiny queue under pipelined load: whatever is lost is counted.
        for i in 0..<3000 { try client.send(checkRequest(0, "s\(i % 100)", measurement, "user.behavior")) }
        try client.flush()
        for _ in 0..<3000 { _ = try client.receive() }
        status = try client.status()
        try await harness.stop()

        let directory = ReceiptDirectory(path: receipts)
        let dropped = harness.daemon.state.receipts!.droppedCount
        #expect(dropped >= 84)
        #expect(UInt64(directory.receipts.count) + dropped == 3100, "every decision is either written or counted as dropped")
        #expect(directory.droppedInGaps == dropped, "every drop is marked in the file")
        #expect(harness.daemon.state.receipts!.writtenCount == UInt64(directory.receipts.count))
    }

    @Test func blockModeHoldsRequestsBackInsteadOfLosingReceipts() async throws {
        let receipts = "/tmp/cd-receipts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.queueCapacity = 4096
            $0.receipts.whenFull = .block
        }
        let writer = try #require(harness.daemon.receiptWriter)
        writer.setPaused(true)
        // Clients that read their answers only at the end. Each connection is also held back
        // by its own output budget once its unread answers pile up; several connections
        // together fill the receipt queue first.
        let connections = 6
        let perConnection = 5000
        let total = connections * perConnection
        let clients = try (0..<connections).map { _ in try harness.client(timeout: 30) }
        for (index, client) in clients.enumerated() {
            let sender = Thread {
                for i in 0..<perConnection { _ = try? client.send(checkRequest(0, "s\((i + index) % 300)", measurement, "user.behavior")) }
                try? client.flush()
            }
            sender.start()
        }
        // Wait until the daemon stops deciding (the queue is full and reading stopped).
        let state = harness.daemon.state
        var decidedWhileHeld: UInt64 = 0
        for _ in 0..<100 {
            try await Task.sleep(for: .milliseconds(200))
            let now = state.counters.decisions.load(ordering: .relaxed)
            if now == decidedWhileHeld && now >= 4096 { break }
            decidedWhileHeld = now
        }
        #expect(decidedWhileHeld >= 4096, "the queue filled")
        #expect(decidedWhileHeld < UInt64(total), "reading stopped while the writer was held")
        #expect(state.receipts!.queued <= state.receipts!.hardLimit)
        writer.setPaused(false)
        let answered = try await offThePool(threads: connections) { index in
            var answered = 0
            for _ in 0..<perConnection {
                _ = try clients[index].receive()
                answered += 1
            }
            return answered
        }
        #expect(answered == Array(repeating: perConnection, count: connections))
        try await harness.stop()
        let directory = ReceiptDirectory(path: receipts)
        #expect(state.receipts!.droppedCount == 0)
        #expect(directory.receipts.count == total)
    }

    @Test func replayReproducesEveryReceiptAcrossConsentChangesAndAReload() async throws {
        let receipts = "/tmp/cd-receipts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness { $0.receipts.directory = receipts }
        let client = try harness.client()
        func askEveryone() throws {
            for subject in ["alice", "bob", "carol", "dave"] {
                for purpose in [measurement, "marketing.advertising.targeted", "marketing.email", "service.essential"] {
                    for jurisdiction in ["DE", "US-CA", "US-ME"] {
                        _ = try client.check(subject: subject, purpose: purpose, dataCategory: "user.behavior", context: RequestContext(jurisdiction: jurisdiction, gpc: subject == "dave"))
                    }
                }
            }
            _ = try client.checkBatch([("alice", measurement, "user.behavior"), ("bob", "marketing.email", "user.contact.email")], context: RequestContext(jurisdiction: "FR"))
            _ = try client.listUses(subject: "alice", context: RequestContext(jurisdiction: "DE"))
        }
        try askEveryone()
        _ = try client.record([grant("alice", measurement), grant("bob", "marketing"), grant("carol", "marketing.advertising.targeted", notice: 1)])
        try askEveryone()
        _ = try client.record([grant("alice", measurement, .deny), grant("dave", "marketing")])
        // A decision about the past: replayed at its own instant.
        _ = try client.check(subject: "alice", purpose: measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE", at: Timestamp.now().adding(TimeSpan(microseconds: -3_600_000_000))))
        // A policy reload in the middle: measurement in the EEA becomes a prohibition.
        try harness.write(policy: "zz-reload.yaml", """
            apiVersion: consentd/v1
            kind: Policy
            name: reload
            rules:
              - id: no-measurement-in-eea
                effect: deny
                purposes: [\(measurement)]
                jurisdictions: [EEA]
            """)
        #expect(harness.daemon.reloader.reload())
        try askEveryone()
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }

        let store = try SQLiteConsentStore(path: harness.daemon.state.configuration.store)
        var report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.receipts > 150)
        #expect(report.mismatches.isEmpty, "\(report.mismatches.prefix(3))")
        #expect(report.matched == report.receipts)
        #expect(report.revisions.count == 2)

        // Tampering with one receipt is caught, at its line.
        let file = try #require(ReceiptFiles.list(receipts).first?.path)
        let original = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map(String.init)
        var lines = original
        let target = try #require(lines.firstIndex { $0.contains(#""decision":"deny","reason":"NO_CONSENT""#) })
        lines[target] = lines[target].replacingOccurrences(of: #""decision":"deny","reason":"NO_CONSENT""#, with: #""decision":"allow","reason":"CONSENT_GRANTED""#)
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        report = try ReceiptReplayer(directory: receipts, store: store).run()
        let redecided = report.mismatches.filter { !$0.message.hasPrefix("hash chain:") }
        #expect(redecided.count == 1)
        #expect(redecided.first?.location == "receipts-000001.jsonl:\(target + 1)")
        #expect(redecided.first?.message.contains("decision allow, replay deny") == true)
        // The hash chain catches the altered line too, in the block that holds it.
        let sealBroken = report.mismatches.filter { $0.message.hasPrefix("hash chain:") }
        #expect(sealBroken.count == 1)
        #expect(sealBroken.first?.message.contains("altered, reordered or replaced") == true)

        // Put the receipt back: clean again.
        try (original.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.mismatches.isEmpty)

        // A subject erased after the decisions cannot be re-decided, and is said to be so.
        _ = try store.erase(subject: "bob")
        report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.mismatches.isEmpty)
        #expect(!report.unverifiable.isEmpty)
        #expect(report.unverifiable.allSatisfy { $0.message.contains("erased after the decision") })
        #expect(report.matched + report.unverifiable.count == report.receipts)

        // An altered archived policy: every receipt of that revision fails.
        let revision = try #require(report.revisions.sorted().first)
        let archived = receipts + "/policies/" + revision + "/eea.yaml"
        try (try String(contentsOfFile: archived, encoding: .utf8) + "\n# edited\n").write(toFile: archived, atomically: true, encoding: .utf8)
        report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(!report.mismatches.isEmpty)
        #expect(report.mismatches.allSatisfy { $0.message.contains("archived sources were altered") })
    }

    @Test func hashedSubjectsReplayWithTheStore() async throws {
        let receipts = "/tmp/cd-receipts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.subject = .hash
        }
        let client = try harness.client()
        _ = try client.record([grant("alice", measurement)])
        // One connection: its receipts keep the last subject's hash, which must never be reused for another.
        let subjects = ["alice", "bob", "alice", "alice\u{0}"]
        for subject in subjects {
            _ = try? client.check(subject: subject, purpose: measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE"))
        }
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let lines = ReceiptDirectory(path: receipts).lines
        #expect(lines.count == subjects.count)
        #expect(!lines.contains { $0.contains("alice") || $0.contains(#""subject":"#) })
        let store = try SQLiteConsentStore(path: harness.daemon.state.configuration.store)
        for (line, subject) in zip(lines, subjects) {
            #expect(line.contains(#""subject_hash":"\#(store.subjectHash(subject))""#), "\(subject.debugDescription): \(line)")
        }
        let report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.matched == subjects.count, "alice's receipt is re-decided through the keyed hash; bob, who never had a record and no tombstone, with none")
        #expect(report.unverifiable.isEmpty)
        #expect(report.mismatches.isEmpty)
    }

    /// A reload whose sources cannot be kept beside the receipts is refused, as a start would be:
    /// receipts must never name a revision replay cannot find.
    @Test func aReloadWhoseSourcesCannotBeArchivedKeepsTheLastGoodSet() async throws {
        let receipts = "/tmp/cd-receipts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness { $0.receipts.directory = receipts }
        let client = try harness.client()
        let serving = try client.status().policyRevision
        // The archive's folder becomes a plain file: nothing can be written under it.
        try FileManager.default.moveItem(atPath: receipts + "/policies", toPath: receipts + "/policies-kept")
        #expect(FileManager.default.createFile(atPath: receipts + "/policies", contents: Data("not a folder".utf8)))
        let us = try String(contentsOf: harness.policies.appendingPathComponent("us.yaml"), encoding: .utf8)
        try harness.write(policy: "us.yaml", us + "\n# a changed revision\n")
        #expect(harness.daemon.reloader.reload() == false)
        let status = try client.status()
        #expect(status.policyRevision == serving)
        #expect(status.policyErrors.contains { $0.code == "policy-archive" && $0.message.contains("replay needs them") }, "\(status.policyErrors)")
        #expect(status.counters.reloadsFailed == 1)
        // Once the sources can be kept, the same change installs.
        try FileManager.default.removeItem(atPath: receipts + "/policies")
        try FileManager.default.moveItem(atPath: receipts + "/policies-kept", toPath: receipts + "/policies")
        #expect(harness.daemon.reloader.reload())
        let revision = try client.status().policyRevision
        #expect(revision != serving)
        #expect(FileManager.default.fileExists(atPath: receipts + "/policies/" + revision + "/us.yaml"))
        try await harness.stop()
    }

    @Test func aFailingDiskIsCountedAndReportedAndTheDaemonKeepsAnswering() async throws {
        // /dev/full: every write fails with ENOSPC.
        guard FileManager.default.fileExists(atPath: "/dev/full") else { return }
        let receipts = "/tmp/cd-receipts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        // Receipts files are never followed through links (a planted one would be narrowed and
        // appended to): the writer is pointed at the device itself.
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.writeEveryFileTo = "/dev/full"
        }
        let client = try harness.client()
        for i in 0..<10 {
            let answer = try client.check(subject: "s\(i)", purpose: measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE"))
            #expect(answer.decision == .deny)
        }
        var status = try client.status()
        for _ in 0..<100 where status.counters.receiptsDropped < 10 {
            try await Task.sleep(for: .milliseconds(20))
            status = try client.status()
        }
        #expect(status.counters.receiptsDropped == 10)
        #expect(status.counters.receiptsWritten == 0)
        #expect(status.receiptsError.contains("No space left on device"))
        try await harness.stop()
    }
}
