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

// MARK: helpers

/// Receipt lines and gap markers of a receipts directory (the hash chain's seal lines apart).
struct ReceiptDirectory {
    let path: String
    /// Every line of every file, seals included.
    var allLines: [String] {
        ReceiptFiles.list(path).flatMap { file in
            ((try? String(contentsOfFile: file.path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
    }
    /// Receipts and gap markers.
    var lines: [String] { allLines.filter { !$0.hasPrefix(#"{"chain""#) } }
    /// The hash chain's seal lines.
    var seals: [String] { allLines.filter { $0.hasPrefix(#"{"chain""#) } }
    var receipts: [[String: Any]] {
        lines.filter { !$0.hasPrefix(#"{"gap""#) }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
    var droppedInGaps: UInt64 {
        lines.filter { $0.hasPrefix(#"{"gap""#) }.compactMap { line -> UInt64? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let gap = object["gap"] as? [String: Any] else { return nil }
            return (gap["dropped"] as? NSNumber)?.uint64Value
        }.reduce(0, +)
    }
}

/// GET over plain HTTP/1.1 on a TCP socket: (status line, body).
func httpGet(host: String = "127.0.0.1", port: Int, path: String) throws -> (String, String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, host, &address.sin_addr)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw ConsentClientError(.connect, "cannot connect to \(host):\(port)") }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var all: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count <= 0 { break }
        all += buffer[..<count]
    }
    let text = String(decoding: all, as: UTF8.self)
    let parts = text.components(separatedBy: "\r\n\r\n")
    return (parts.first?.components(separatedBy: "\r\n").first ?? "", parts.dropFirst().joined(separator: "\r\n\r\n"))
}

/// The value of one sample line (`name{labels} value`) in a Prometheus exposition.
func sample(_ exposition: String, _ series: String) -> Double? {
    for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.split(separator: " ").last ?? "")
    }
    return nil
}

let measurement = "marketing.advertising.measurement"

extension RawConnection: @unchecked Sendable {}

final class Tally: Sendable {
    let value = Atomic<Int>(0)
}

// MARK: roles

@Suite struct RoleMapTests {
    func state(_ configure: (inout ServerConfiguration) -> Void) async throws -> (DaemonHarness, ServerState) {
        let harness = try await DaemonHarness {
            $0.allowAnyAdmin = false
            configure(&$0)
        }
        return (harness, harness.daemon.state)
    }

    @Test func theRoleMapDecidesWhoMayDoWhat() async throws {
        let own = UInt32(getuid())
        typealias Case = (String, (inout ServerConfiguration) -> Void, PeerCredentials?, PeerRoles)
        let cases: [Case] = [
            ("own uid: everything", { _ in }, PeerCredentials(pid: 1, uid: own, gid: 5), PeerRoles(check: true, admin: true)),
            ("root: everything", { _ in }, PeerCredentials(pid: 1, uid: 0, gid: 0), PeerRoles(check: true, admin: true)),
            ("others check by default", { _ in }, PeerCredentials(pid: 1, uid: 4242, gid: 4242), PeerRoles(check: true, admin: false)),
            ("unknown peer checks by default", { _ in }, nil, PeerRoles(check: true, admin: false)),
            ("admin uid", { $0.adminUIDs = [4242] }, PeerCredentials(pid: 1, uid: 4242, gid: 1), PeerRoles(check: true, admin: true)),
            ("admin gid", { $0.adminGIDs = [77] }, PeerCredentials(pid: 1, uid: 4242, gid: 77), PeerRoles(check: true, admin: true)),
            ("check list excludes others", { $0.checkUIDs = [5000] }, PeerCredentials(pid: 1, uid: 4242, gid: 1), PeerRoles(check: false, admin: false)),
            ("check list admits its uid", { $0.checkUIDs = [4242] }, PeerCredentials(pid: 1, uid: 4242, gid: 1), PeerRoles(check: true, admin: false)),
            ("check gid admits members", { $0.checkGIDs = [88] }, PeerCredentials(pid: 1, uid: 4242, gid: 88), PeerRoles(check: true, admin: false)),
            ("check list: unknown peer refused", { $0.checkGIDs = [88] }, nil, PeerRoles(check: false, admin: false)),
            ("admins check even when listed checkers exist", { $0.checkUIDs = [5000] }, PeerCredentials(pid: 1, uid: own, gid: 1), PeerRoles(check: true, admin: true)),
            ("allow-any-admin", { $0.allowAnyAdmin = true; $0.checkUIDs = [5000] }, nil, PeerRoles(check: true, admin: true)),
        ]
        for (name, configure, peer, expected) in cases {
            let (harness, state) = try await state(configure)
            #expect(state.roles(of: peer) == expected, "\(name)")
            try await harness.stop()
        }
    }
}

// MARK: receipts

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
        try FileManager.default.createDirectory(atPath: receipts, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: receipts + "/receipts-000001.jsonl", withDestinationPath: "/dev/full")
        let harness = try await DaemonHarness { $0.receipts.directory = receipts }
        // The writer starts a file after the last existing one (opened at the first write): make that /dev/full too.
        try FileManager.default.createSymbolicLink(atPath: receipts + "/receipts-000002.jsonl", withDestinationPath: "/dev/full")
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

// MARK: metrics

@Suite struct MetricsTests {
    @Test func scrapedOverHTTPTheCountersMove() async throws {
        let receipts = "/tmp/cd-receipts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.metricsAddress = "127.0.0.1:0"
            $0.receipts.directory = receipts
        }
        let server = try #require(harness.daemon.metricsServer)
        let port = try #require(try await server.waitUntilListening().port)
        let (status0, before) = try httpGet(port: port, path: "/metrics")
        #expect(status0.hasPrefix("HTTP/1.1 200"))
        #expect(before.contains("consentd_policy_revision_info{revision=\"\(harness.daemon.state.policies.set.revision)\"} 1"))

        let client = try harness.client()
        _ = try client.record([grant("alice", measurement)])
        for _ in 0..<3 { _ = try client.check(subject: "alice", purpose: measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE")) }
        for _ in 0..<2 { _ = try client.check(subject: "bob", purpose: measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE")) }
        _ = try client.check(subject: "bob", purpose: "no.such.purpose", dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE"))
        let raw = try RawConnection(harness.socket)
        raw.send([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        _ = raw.readToEnd()
        #expect(harness.daemon.reloader.reload())
        try await Task.sleep(for: .milliseconds(100))

        let (_, after) = try httpGet(port: port, path: "/metrics")
        #expect(sample(after, #"consentd_decisions_total{decision="allow",reason="CONSENT_GRANTED"}"#) == 3)
        #expect(sample(after, #"consentd_decisions_total{decision="deny",reason="NO_CONSENT"}"#) == 2)
        #expect(sample(after, #"consentd_decisions_total{decision="deny",reason="UNKNOWN_PURPOSE"}"#) == 1)
        #expect((sample(after, "consentd_request_duration_seconds_count") ?? 0) >= 7)
        #expect(sample(after, #"consentd_frames_rejected_total{cause="malformed"}"#) == 1)
        #expect(sample(after, #"consentd_policy_reloads_total{result="ok"}"#) == 1)
        #expect(sample(after, "consentd_consent_sequence") == 1)
        #expect(sample(after, "consentd_consent_index_subjects") == 1)
        #expect((sample(after, "consentd_connections_accepted_total") ?? 0) >= 2)
        #expect((sample(after, "consentd_receipts_written_total") ?? 0) + (sample(after, "consentd_receipts_queued") ?? 0) == 6)
        #expect(sample(after, "consentd_receipts_dropped_total") == 0)
        // Counters never go back: a second scrape with nothing new reads the same.
        let (_, again) = try httpGet(port: port, path: "/metrics")
        #expect(sample(again, #"consentd_decisions_total{decision="allow",reason="CONSENT_GRANTED"}"#) == 3)

        // Every use ListUses reports is a decision event like a Check's: counted in Status and the
        // metrics, and receipted, once each.
        let uses = try client.listUses(subject: "alice", context: RequestContext(jurisdiction: "DE")).uses.count
        #expect(uses > 0)
        let status = try client.status().counters
        let (_, latest) = try httpGet(port: port, path: "/metrics")
        #expect(status.decisions == UInt64(6 + uses))
        #expect(status.allowed == UInt64(3 + uses))
        let decisionSeries = latest.split(separator: "\n").filter { $0.hasPrefix("consentd_decisions_total{") }
        #expect(decisionSeries.compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +) == Double(status.decisions))
        #expect((sample(latest, "consentd_receipts_written_total") ?? 0) + (sample(latest, "consentd_receipts_queued") ?? 0) == Double(6 + uses))
        // Status and the exposition are built from one counter table: they agree on every counter both show.
        #expect(sample(latest, "consentd_requests_total") == Double(status.requests))
        #expect(sample(latest, "consentd_connections_accepted_total") == Double(status.connectionsAccepted))
        #expect(sample(latest, "consentd_connections_refused_total") == Double(status.connectionsRefused))
        #expect(sample(latest, "consentd_connections_idle_closed_total") == Double(status.connectionsIdleClosed))
        #expect(sample(latest, #"consentd_policy_reloads_total{result="ok"}"#) == Double(status.reloadsOk))
        #expect(sample(latest, #"consentd_policy_reloads_total{result="failed"}"#) == Double(status.reloadsFailed))
        #expect((sample(latest, #"consentd_frames_rejected_total{cause="malformed"}"#) ?? 0) + (sample(latest, #"consentd_frames_rejected_total{cause="too_large"}"#) ?? 0)
                == Double(status.framesRejected))

        let (notFound, _) = try httpGet(port: port, path: "/other")
        #expect(notFound.hasPrefix("HTTP/1.1 404"))
        #expect(try client.status().metricsAddress == "127.0.0.1:\(port)")
        try await harness.stop()
    }
}

// MARK: abuse

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

@Suite struct FuzzFindingTests {
    /// fuzz-frames found the fast path answering a Check whose channel was not UTF-8, a frame the
    /// protobuf decoder refuses. Over a real socket such a frame is now a malformed frame.
    @Test func aContextStringThatIsNotUTF8IsAMalformedFrame() async throws {
        let harness = try await DaemonHarness()
        for field: UInt8 in [0x0a, 0x2a] { // jurisdiction (1), channel (5)
            var check: [UInt8] = [0x0a, 0x01, 0x61]                       // subject "a"
            check += [0x12, UInt8(measurement.utf8.count)] + Array(measurement.utf8)
            check += [0x1a, 0x0d] + Array("user.behavior".utf8)
            check += [0x22, 0x04, field, 0x02, 0x96, 0x44]                 // context: 2 bytes, invalid UTF-8
            let request: [UInt8] = [0x08, 0x07, 0x12, UInt8(check.count)] + check
            let raw = try RawConnection(harness.socket)
            // Refused (not answered by the fast path), and the connection stays usable: a
            // Status sent after it is answered too.
            raw.send(FrameCodec.frame(request) + FrameCodec.frame([0x08, 0x08, 0x42, 0x00]))
            raw.finishSending()
            let answers = try responses(in: raw.readToEnd())
            #expect(answers.count == 2)
            #expect(answers.first?.error.code == .invalidArgument, "field \(field >> 3): \(answers)")
            #expect(answers.first?.id == 7)
            #expect(answers.last?.status.version == ConsentDaemon.version)
        }
        try await harness.stop()
    }
}

extension FuzzFindingTests {
    /// fuzz-frames found the batch fast path reusing the previous batch's id for a batch without one.
    @Test func aBatchWithoutAnIdIsAnsweredWithIdZero() async throws {
        let harness = try await DaemonHarness()
        let item: [UInt8] = [0x0a, 0x01, 0x61, 0x12, UInt8(measurement.utf8.count)] + Array(measurement.utf8) + [0x1a, 0x0d] + Array("user.behavior".utf8)
        let batch: [UInt8] = [0x0a, UInt8(item.count)] + item
        let withID: [UInt8] = [0x08, 0x0a, 0x1a, UInt8(batch.count)] + batch
        let withoutID: [UInt8] = [0x1a, UInt8(batch.count)] + batch
        let raw = try RawConnection(harness.socket)
        raw.send(FrameCodec.frame(withID) + FrameCodec.frame(withoutID))
        raw.finishSending()
        let answers = try responses(in: raw.readToEnd())
        #expect(answers.map(\.id) == [10, 0])
        #expect(answers.allSatisfy { $0.checkBatch.results.count == 1 })
        try await harness.stop()
    }

    /// And a Check whose data category came twice, first not UTF-8, then valid.
    @Test func anInvalidStringReplacedByALaterOneIsStillRefused() async throws {
        let harness = try await DaemonHarness()
        var check: [UInt8] = [0x0a, 0x01, 0x61, 0x12, UInt8(measurement.utf8.count)] + Array(measurement.utf8)
        check += [0x1a, 0x03, 0x75, 0x8b, 0x65] + [0x1a, 0x0d] + Array("user.behavior".utf8)
        let raw = try RawConnection(harness.socket)
        raw.send(FrameCodec.frame([0x08, 0x07, 0x12, UInt8(check.count)] + check))
        raw.finishSending()
        let answers = try responses(in: raw.readToEnd())
        // The decoder refuses the frame (a string that is not UTF-8), so the fast path must not
        // answer it either: an error naming UTF-8, not a decision.
        #expect(answers.first?.error.code == .invalidArgument)
        #expect(answers.first?.error.message.contains("UTF-8") == true)
        try await harness.stop()
    }
}
