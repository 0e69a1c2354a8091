import ConsentClient
import ConsentModel
@testable import ConsentReceipts
import ConsentServer
import ConsentStore
import ConsentTesting
import ConsentWire
import Foundation
import Testing

/// Receipts over months: closed files compressed, the directory kept within its byte budget (at
/// every moment, sampled while the load runs) and its age limit by retiring the oldest files —
/// recorded in the store, so a replay reports them as retired and reproduces every receipt still
/// there — and receipts stopped, counted and marked below the free-space floor while consent
/// writes go on.
@Suite(.serialized) struct ReceiptRetentionTests {
    static let targeted = "marketing.advertising.targeted", browsing = "user.behavior.browsing"

    /// Bytes of the receipts files in `directory` (the policy archive and the retirement ledger,
    /// ~300 bytes per retired file, apart).
    static func used(_ directory: String) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("receipts-") && $0 != "receipts-retired.jsonl" }.reduce(0) { total, name in
            total + ((try? FileManager.default.attributesOfItem(atPath: directory + "/" + name)[.size] as? Int) ?? 0)
        }
    }

    /// Pipelines `count` Checks over `subjects` on one connection and reads every answer.
    static func load(_ client: ConsentClient, count: Int, subjects: Int = 50) throws {
        var sent = 0
        while sent < count {
            let chunk = min(200, count - sent)
            for index in 0..<chunk {
                var request = Consentd_V1_Request()
                request.check = Consentd_V1_CheckRequest.with {
                    $0.subjectID = "subject-\((sent + index) % subjects)"
                    $0.purpose = targeted
                    $0.dataCategory = browsing
                    $0.context = Consentd_V1_Context(RequestContext(jurisdiction: "DE"))
                }
                _ = try client.send(request)
            }
            try client.flush()
            for _ in 0..<chunk { _ = try client.receive() }
            sent += chunk
        }
    }

    @Test func theBudgetHoldsThroughoutAndReplayReportsRetiredFiles() async throws {
        let receipts = "/tmp/cd-retention-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let budget = 64 << 10
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.maximumFileSize = 8 << 10
            $0.receipts.retentionBytes = budget
        }
        let admin = try harness.client()
        for subject in 0..<50 where subject % 3 == 0 { _ = try admin.record([grant("subject-\(subject)", Self.targeted)]) }
        // Sampled while the load runs: the directory never passes its budget.
        let sampling = Task.detached {
            var largest = 0
            while !Task.isCancelled {
                largest = max(largest, Self.used(receipts))
                try? await Task.sleep(for: .milliseconds(2))
            }
            return largest
        }
        let decisions = 6_000
        try Self.load(try harness.client(), count: decisions)
        try await Task.sleep(for: .milliseconds(300))
        sampling.cancel()
        let largest = await sampling.value
        let status = try admin.status()
        #expect(status.counters.receiptsDropped == 0)
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        #expect(largest <= budget, "the receipts took \(largest) bytes, over the budget of \(budget)")
        #expect(Self.used(receipts) <= budget)
        let files = ReceiptFiles.list(receipts)
        #expect(files.dropLast().allSatisfy { $0.compressed }, "closed files were not compressed: \(files.map(\.name))")
        let ledger = ReceiptRetirement.ledger(receipts)
        #expect(ledger.count > 3, "\(ledger.count) files retired")
        #expect(ledger.allSatisfy { $0.reason == "budget" })

        let store = try SQLiteConsentStore(path: harness.daemon.state.configuration.store)
        #expect(try store.receiptLog(.retirements).compactMap(ReceiptRetirement.parse) == ledger)
        let report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.isClean, "\(report.mismatches.prefix(3))")
        #expect(report.retired == ledger)
        #expect(report.matched == report.receipts && report.unsealed.isEmpty)
        // Every decision has its receipt: reproduced, or in a retired file.
        #expect(report.receipts + report.retiredReceipts == decisions, "\(report.receipts) + \(report.retiredReceipts) retired")

        // Tampering is still tampering: a retirement claimed in the ledger only (the oldest
        // remaining file deleted, its entry forged), and a file removed from the middle.
        let copy = receipts + "-copy"
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try FileManager.default.copyItem(atPath: receipts, toPath: copy)
        let oldest = try #require(ReceiptFiles.list(copy).first)
        let summary = ReceiptRetirement.summary(of: try ReceiptFiles.read(oldest))
        let forged = ReceiptRetirement(file: oldest.name, index: oldest.index, receipts: summary.receipts, lines: summary.lines,
                                       firstPrev: summary.firstPrev!, lastSeal: summary.lastSeal!, bytes: 1, reason: "budget", retiredAt: Timestamp.now().description)
        try FileManager.default.removeItem(atPath: oldest.path)
        let handle = try #require(FileHandle(forWritingAtPath: copy + "/" + ReceiptFiles.ledgerName))
        handle.seekToEndOfFile()
        handle.write(Data((forged.line + "\n").utf8))
        try handle.close()
        let forgedReport = try ReceiptReplayer(directory: copy, store: store).run()
        #expect(forgedReport.mismatches.contains { $0.message.contains("no record of its retirement") }, "\(forgedReport.mismatches.prefix(3))")
        #expect(forgedReport.mismatches.contains { $0.message.contains("does not start at the beginning") || $0.message.contains("chain is broken") })

        let middle = receipts + "-middle"
        defer { try? FileManager.default.removeItem(atPath: middle) }
        try FileManager.default.copyItem(atPath: receipts, toPath: middle)
        let remaining = ReceiptFiles.list(middle)
        try FileManager.default.removeItem(atPath: remaining[remaining.count / 2].path)
        let middleReport = try ReceiptReplayer(directory: middle, store: store).run()
        #expect(middleReport.mismatches.contains { $0.message.contains("chain is broken") }, "\(middleReport.mismatches.prefix(3))")
    }

    @Test func filesPastTheirAgeAreRetired() async throws {
        let receipts = "/tmp/cd-retention-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.maximumFileSize = 8 << 10
            $0.receipts.retentionDays = 0.5 / 86_400
        }
        let client = try harness.client()
        try Self.load(client, count: 500)
        try await Task.sleep(for: .milliseconds(700))
        try Self.load(client, count: 500)
        try await Task.sleep(for: .milliseconds(300))
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let ledger = ReceiptRetirement.ledger(receipts)
        #expect(!ledger.isEmpty && ledger.allSatisfy { $0.reason == "age" })
        let report = try ReceiptReplayer(directory: receipts, store: SQLiteConsentStore(path: harness.daemon.state.configuration.store)).run()
        #expect(report.isClean, "\(report.mismatches.prefix(3))")
        #expect(report.receipts + report.retiredReceipts == 1_000)
    }

    /// Below the free-space floor (here: a floor above any disk), receipts stop — counted as
    /// dropped, with the reason in status and in the files once written again — and consent
    /// writes go on.
    @Test func belowTheFreeSpaceFloorReceiptsStopAndConsentWritesGoOn() async throws {
        let receipts = "/tmp/cd-retention-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.minimumFreeBytes = Int.max / 2
        }
        let client = try harness.client()
        try Self.load(client, count: 300)
        let written = try client.record([grant("subject-1", Self.targeted)])
        #expect(written.sequences.count == 1)
        #expect(try client.check(subject: "subject-1", purpose: Self.targeted, dataCategory: Self.browsing, context: RequestContext(jurisdiction: "DE")).reason == .consentGranted)
        var dropped: UInt64 = 0
        for _ in 0..<200 where dropped < 301 {
            dropped = try client.status().counters.receiptsDropped
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(dropped >= 301, "\(dropped) receipts counted as dropped")
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let directory = ReceiptDirectory(path: receipts)
        #expect(directory.receipts.isEmpty, "receipts were written below the floor")
    }
}
