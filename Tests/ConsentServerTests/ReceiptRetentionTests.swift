import ConsentClient
import ConsentModel
@testable import ConsentReceipts
import ConsentServer
import ConsentStore
import ConsentTesting
import ConsentWire
import Foundation
import Logging
import Testing

/// Receipts over months: closed files compressed, the directory kept within its byte budget (at
/// every moment, sampled while the load runs) and its age limit by retiring the oldest files —
/// recorded in the store, so a replay reports them as retired and reproduces every receipt still
/// there — and receipts stopped, counted and marked below the free-space floor while consent
/// writes go on.
@Suite(.serialized) struct ReceiptRetentionTests {
    static let targeted = "marketing.advertising.targeted", browsing = "user.behavior.browsing"

    /// Bytes of the receipts files and the retirement ledger in `directory` (the policy archive
    /// apart).
    static func used(_ directory: String) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("receipts-") }.reduce(0) { total, name in
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

    /// Waits until the daemon has written every receipt it queued (status counts those the
    /// writer holds in hand as queued too).
    static func drained(_ client: ConsentClient) async throws {
        for _ in 0..<6000 where try client.status().receiptsQueued > 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try client.status().receiptsQueued == 0)
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
        try await Self.drained(admin)
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
        let store = try SQLiteConsentStore(path: harness.daemon.state.configuration.store)
        let recorded = try store.receiptLog(.retirements).compactMap(ReceiptRetirement.parse)
        #expect(recorded.count > 3, "\(recorded.count) files retired")
        #expect(recorded.allSatisfy { $0.reason == "budget" && $0.damage == nil })
        // The directory's ledger: the newest of them, within its share of the budget.
        let ledger = ReceiptRetirement.ledger(receipts)
        #expect(!ledger.isEmpty && ledger == Array(recorded.suffix(ledger.count)))
        let report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.isClean, "\(report.mismatches.prefix(3))")
        #expect(report.retired == recorded)
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

    /// Receipts files that cannot be read — one not gzip at all, one gzip holding no sealed block
    /// — neither stop retiring (the budget holds whatever the files hold: each is retired with
    /// its damage recorded in the store and the ledger) nor stop a replay: it reports each as a
    /// finding, checks the chain across it and reproduces every other receipt.
    @Test func unreadableFilesAreRetiredWithTheirDamageAndReplayGoesOnPastThem() async throws {
        let receipts = "/tmp/cd-retention-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let fileSize = 8 << 10
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.maximumFileSize = fileSize
        }
        let client = try harness.client()
        try Self.load(client, count: 3_000)
        try await Self.drained(client)
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let store = try SQLiteConsentStore(path: harness.daemon.state.configuration.store)
        let files = ReceiptFiles.list(receipts)
        try #require(files.count > 12, "\(files.count) files")
        #expect(files.dropLast().allSatisfy { $0.compressed })
        let clean = try ReceiptReplayer(directory: receipts, store: store).run()
        try #require(clean.isClean && clean.receipts == 3_000)

        // A file in the middle that is not gzip: the replay reports it and goes on.
        let middle = receipts + "-middle"
        defer { try? FileManager.default.removeItem(atPath: middle) }
        try FileManager.default.copyItem(atPath: receipts, toPath: middle)
        let spoiled = ReceiptFiles.list(middle)[5]
        let lost = ReceiptRetirement.summary(of: try ReceiptFiles.read(spoiled)).receipts
        try Data("not gzip at all\n".utf8).write(to: URL(fileURLWithPath: spoiled.path))
        let middleReport = try ReceiptReplayer(directory: middle, store: store).run()
        #expect(middleReport.mismatches.count == 1, "\(middleReport.mismatches)")
        #expect(middleReport.mismatches.first?.location == spoiled.name)
        #expect(middleReport.mismatches.first?.message.contains("cannot be read") == true)
        #expect(middleReport.matched == middleReport.receipts && middleReport.receipts == 3_000 - lost)

        // The two oldest files damaged, then a pass under a budget that must retire them.
        let oldest = files[0], second = files[1]
        let secondLost = ReceiptRetirement.summary(of: try ReceiptFiles.read(second)).receipts
        try Data("not gzip at all\n".utf8).write(to: URL(fileURLWithPath: oldest.path))
        var configuration = ReceiptConfiguration()
        configuration.maximumFileSize = fileSize
        configuration.retentionBytes = 8 * fileSize
        let retainer = ReceiptRetainer(directory: receipts, configuration: configuration, fileMode: 0o600, anchor: ReceiptAnchor(store: store), logger: Logger(label: "test"))
        // (gzip holding a line and no seal: compressed by the retainer's own code.)
        let plain = receipts + "/" + second.name.replacingOccurrences(of: ".gz", with: "")
        try FileManager.default.removeItem(atPath: second.path)
        try Data("{\"id\":\"unsealed\"}\n".utf8).write(to: URL(fileURLWithPath: plain))
        try retainer.compress(ReceiptFiles.File(index: second.index, path: plain, compressed: false))
        retainer.pass(writing: Int.max)
        #expect(Self.used(receipts) + 3 * fileSize <= configuration.retentionBytes, "\(Self.used(receipts)) bytes kept: \(((try? FileManager.default.contentsOfDirectory(atPath: receipts)) ?? []).sorted().map { "\($0)=\(ReceiptRetainer.size(receipts + "/" + $0))" })")
        #expect(retainer.retiredDamaged.load(ordering: .relaxed) == 2)
        let recorded = try store.receiptLog(.retirements).compactMap(ReceiptRetirement.parse)
        #expect(recorded.count == retainer.retired.load(ordering: .relaxed) && recorded.count > 4)
        #expect(recorded.prefix(2).map(\.file) == [oldest.name, second.name])
        #expect(recorded.prefix(2).allSatisfy { $0.damage != nil && $0.lastSeal.isEmpty })
        #expect(recorded.dropFirst(2).allSatisfy { $0.damage == nil })

        let report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.retired == recorded)
        #expect(report.mismatches.count == 2, "\(report.mismatches)")
        #expect(report.mismatches.map(\.location) == [oldest.name, second.name])
        #expect(report.mismatches.allSatisfy { $0.message.contains("could not be read") })
        #expect(report.matched == report.receipts && report.unsealed.isEmpty)
        // Every other decision is reproduced or in an intact retired file.
        let firstLost = clean.receipts - secondLost - report.receipts - report.retiredReceipts
        #expect(firstLost > 0 && firstLost < 3_000 / 10, "\(firstLost) receipts in the first file")
    }

    /// The retirement ledger is in the budget, and cut to its newest entries so that it stays
    /// small however many tiny files are retired.
    @Test func theLedgerStaysSmall() async throws {
        let receipts = "/tmp/cd-retention-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        try FileManager.default.createDirectory(atPath: receipts, withIntermediateDirectories: true)
        var configuration = ReceiptConfiguration()
        configuration.maximumFileSize = 4096
        configuration.retentionBytes = 4 * 4096
        let retainer = ReceiptRetainer(directory: receipts, configuration: configuration, fileMode: 0o600, anchor: nil, logger: Logger(label: "test"))
        let ledgerPath = receipts + "/" + ReceiptFiles.ledgerName
        #expect(retainer.ledgerLimit == 1024)
        var largest = 0
        for index in 1...200 {
            let path = receipts + "/" + ReceiptFiles.name(index)
            try Data("{\"id\":\"x\"}\n".utf8).write(to: URL(fileURLWithPath: path))
            try retainer.retire(ReceiptFiles.File(index: index, path: path, compressed: false), reason: "budget", bytes: 12)
            largest = max(largest, ReceiptRetainer.size(ledgerPath))
        }
        let ledger = ReceiptRetirement.ledger(receipts)
        #expect(largest <= retainer.ledgerLimit + 400, "the ledger reached \(largest) bytes")
        #expect(!ledger.isEmpty && ledger.last?.index == 200, "the newest entry is kept")
        #expect(ledger.map(\.index) == Array((201 - ledger.count)...200))
        #expect(ReceiptFiles.list(receipts).isEmpty)
        // The ledger counts in the budget: a closed file that fits only without it is retired.
        let path = receipts + "/" + ReceiptFiles.name(5000)
        let room = 4 * 4096 - 3 * 4096 - ReceiptRetainer.size(ledgerPath)
        try Data(repeating: 0x41, count: room + 1).write(to: URL(fileURLWithPath: path))
        retainer.retire(writing: 6000)
        #expect(ReceiptFiles.list(receipts).isEmpty)
    }

    /// At shutdown the writer drains its queue without waiting for retirement passes between
    /// tiny files (every queued receipt is written), and the next pass brings the directory back
    /// within its budget.
    @Test func shutdownWritesEveryQueuedReceiptAndTheNextPassRestoresTheBudget() async throws {
        let receipts = "/tmp/cd-retention-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.maximumFileSize = 4096
            $0.receipts.retentionBytes = 4 * 4096
        }
        let writer = try #require(harness.daemon.receiptWriter)
        writer.setPaused(true)
        try Self.load(try harness.client(), count: 2_000)
        let queue = try #require(harness.daemon.state.receipts)
        #expect(queue.queued == 2_000)
        writer.setPaused(false)
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        #expect(queue.writtenCount == 2_000 && queue.droppedCount == 0 && queue.queued == 0)
        var configuration = ReceiptConfiguration()
        configuration.maximumFileSize = 4096
        configuration.retentionBytes = 4 * 4096
        let next = ReceiptRetainer(directory: receipts, configuration: configuration, fileMode: 0o600, anchor: ReceiptAnchor(store: try SQLiteConsentStore(path: harness.daemon.state.configuration.store)), logger: Logger(label: "test"))
        next.pass(writing: Int.max)
        #expect(Self.used(receipts) + 3 * 4096 <= 4 * 4096, "\(Self.used(receipts)) bytes kept")
        let report = try ReceiptReplayer(directory: receipts, store: try SQLiteConsentStore(path: harness.daemon.state.configuration.store)).run()
        #expect(report.isClean, "\(report.mismatches.prefix(3))")
        #expect(report.receipts + report.retiredReceipts == 2_000)
        // A shutdown past its grace gives up waiting for a pass that has not settled.
        let idle = ReceiptRetainer(directory: receipts, configuration: configuration, fileMode: 0o600, anchor: nil, logger: Logger(label: "test"))
        idle.waitUntilSettled(1) { true }
    }

    /// Retired files and what points into them: an anchor in a file since retired is not taken
    /// for receipts removed from the end (at start-up or in a replay), while one in a file still
    /// there must be found; a directory whose files were all retired goes on numbering after the
    /// retired ones, and its replay reports them rather than refusing to run.
    @Test func retiredFilesKeepTheAnchorAndTheNumberingHonest() async throws {
        let receipts = "/tmp/cd-retention-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.maximumFileSize = 8 << 10
        }
        let client = try harness.client()
        try Self.load(client, count: 2_000)
        try await Self.drained(client)
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let storePath = harness.daemon.state.configuration.store
        let store = try SQLiteConsentStore(path: storePath)
        let anchored = try #require(try store.receiptAnchor())
        let head = ReceiptAnchor.Head(anchored)
        #expect(head.file == ReceiptFiles.list(receipts).last?.index, "the anchor names the file it is in: \(anchored)")

        // Every file retired (by age).
        var configuration = ReceiptConfiguration()
        configuration.maximumFileSize = 8 << 10
        configuration.retentionDays = 0.2 / 86_400
        try await Task.sleep(for: .milliseconds(300))
        let retainer = ReceiptRetainer(directory: receipts, configuration: configuration, fileMode: 0o600, anchor: ReceiptAnchor(store: store), logger: Logger(label: "test"))
        retainer.pass(writing: Int.max)
        #expect(ReceiptFiles.list(receipts).isEmpty)
        let recorded = try store.receiptLog(.retirements).compactMap(ReceiptRetirement.parse)
        let lastIndex = try #require(recorded.map(\.index).max())
        let allRetired = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(allRetired.isClean, "\(allRetired.mismatches.prefix(3))")
        #expect(allRetired.retired == recorded && allRetired.retiredReceipts == 2_000)

        // A daemon started on the emptied directory: no break recorded, numbering goes on.
        let again = try await DaemonHarness {
            $0.store = storePath
            $0.receipts.directory = receipts
            $0.receipts.maximumFileSize = 8 << 10
        }
        let next = try again.client()
        try Self.load(next, count: 100)
        try await Self.drained(next)
        try await again.stop()
        let breaks = try store.receiptChainBreaks()
        #expect(breaks.isEmpty, "\(breaks)")
        #expect(ReceiptFiles.list(receipts).first.map { $0.index > lastIndex } == true, "\(ReceiptFiles.list(receipts).map(\.name)) after \(lastIndex)")
        let report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.isClean, "\(report.mismatches.prefix(3))")
        #expect(report.receipts == 100 && report.retiredReceipts == 2_000)

        // An anchor in a file still there that is not in it: sealed receipts were removed.
        let present = try #require(ReceiptFiles.list(receipts).last)
        try store.setReceiptAnchor(ReceiptAnchor.Head(hash: String(repeating: "ab", count: 32), file: present.index).text)
        #expect(try ReceiptReplayer(directory: receipts, store: store).run().mismatches.contains { $0.message.contains("store anchored seal abab") })
    }

    /// What gets in the way of retiring does not stop it: a directory put in place of the oldest
    /// file (nothing recorded for it; the files after it retire around it), a ledger that cannot
    /// be written (the store's record is the proof), a gzip file cut short (damage, not a short
    /// file) — and each damaged retirement is named by a replay even where the chain cannot be
    /// followed.
    @Test func obstaclesAreRetiredAroundAndDamageIsNamed() async throws {
        let receipts = "/tmp/cd-retention-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.maximumFileSize = 8 << 10
        }
        let client = try harness.client()
        try Self.load(client, count: 2_000)
        try await Self.drained(client)
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let store = try SQLiteConsentStore(path: harness.daemon.state.configuration.store)
        let files = ReceiptFiles.list(receipts)
        // The oldest replaced by a directory; the ledger made a directory; the third cut short.
        try FileManager.default.removeItem(atPath: files[0].path)
        try FileManager.default.createDirectory(atPath: files[0].path, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: receipts + "/" + ReceiptFiles.ledgerName, withIntermediateDirectories: false)
        let cut = try Data(contentsOf: URL(fileURLWithPath: files[2].path))
        try cut.prefix(cut.count / 2).write(to: URL(fileURLWithPath: files[2].path))
        #expect(throws: (any Error).self) { _ = try ReceiptFiles.read(files[2]) }

        var configuration = ReceiptConfiguration()
        configuration.maximumFileSize = 8 << 10
        configuration.retentionBytes = 8 * (8 << 10)
        let retainer = ReceiptRetainer(directory: receipts, configuration: configuration, fileMode: 0o600, anchor: ReceiptAnchor(store: store), logger: Logger(label: "test"))
        retainer.pass(writing: Int.max)
        retainer.pass(writing: Int.max)
        let recorded = try store.receiptLog(.retirements).compactMap(ReceiptRetirement.parse)
        #expect(!recorded.contains { $0.index == files[0].index }, "the directory in a file's place was recorded as retired")
        #expect(Set(recorded.map(\.index)).count == recorded.count, "a file was recorded twice")
        #expect(recorded.first { $0.index == files[2].index }?.damage?.contains("cut short") == true)
        #expect(recorded.count > 4)
        let kept = ReceiptFiles.list(receipts).filter { $0.index != files[0].index }.reduce(0) { $0 + ReceiptRetainer.size($1.path) }
        #expect(kept + ReceiptRetainer.size(files[0].path) + 3 * (8 << 10) <= configuration.retentionBytes)
        let report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.mismatches.contains { $0.location == files[2].name && $0.message.contains("could not be read") }, "\(report.mismatches)")
    }

    /// A file the store records as retired but that is still there (the daemon could not delete
    /// it and retired the newer ones around it): a replay checks it as it is and takes the chain
    /// up again after it; a later process deleting it does not record it a second time.
    @Test func aRetiredFileStillThereIsNeitherTamperingNorRecordedTwice() async throws {
        let receipts = "/tmp/cd-retention-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.maximumFileSize = 8 << 10
        }
        let client = try harness.client()
        try Self.load(client, count: 1_000)
        try await Self.drained(client)
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let store = try SQLiteConsentStore(path: harness.daemon.state.configuration.store)
        let files = ReceiptFiles.list(receipts)
        try #require(files.count > 8)
        // What a daemon that could not delete the first file leaves: all of 1…5 recorded, 2…5 gone.
        for file in files[0..<5] {
            let summary = ReceiptRetirement.summary(of: try ReceiptFiles.read(file))
            let entry = ReceiptRetirement(file: file.name, index: file.index, receipts: summary.receipts, lines: summary.lines, firstPrev: summary.firstPrev!,
                                          lastSeal: summary.lastSeal!, bytes: 1, reason: "budget", retiredAt: Timestamp.now().description)
            try store.appendReceiptLog(.retirements, entry.line)
            if file.index != files[0].index { try FileManager.default.removeItem(atPath: file.path) }
        }
        let report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.isClean, "\(report.mismatches.prefix(3))")
        #expect(report.retired.map(\.index) == files[0..<5].map(\.index))

        // The next process deletes it without a second record.
        var configuration = ReceiptConfiguration()
        configuration.maximumFileSize = 8 << 10
        configuration.retentionBytes = 1 << 30
        let retainer = ReceiptRetainer(directory: receipts, configuration: configuration, fileMode: 0o600, anchor: ReceiptAnchor(store: store), logger: Logger(label: "test"))
        retainer.learnRecorded()
        try retainer.retire(files[0], reason: "budget", bytes: 1)
        #expect(!FileManager.default.fileExists(atPath: files[0].path))
        #expect(try store.receiptLog(.retirements).compactMap(ReceiptRetirement.parse).filter { $0.index == files[0].index }.count == 1)
        #expect(try ReceiptReplayer(directory: receipts, store: store).run().isClean)
    }

    /// A ledger line or a file name with an index no writer uses (Int.max) is not a receipts
    /// file's: numbering after it would overflow. The daemon starts and numbers as before.
    @Test func absurdIndexesAreIgnored() async throws {
        let receipts = "/tmp/cd-retention-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        try FileManager.default.createDirectory(atPath: receipts, withIntermediateDirectories: true)
        let absurd = ReceiptRetirement(file: "receipts-9223372036854775807.jsonl.gz", index: Int.max, receipts: 1, lines: 2, firstPrev: "00", lastSeal: "11",
                                       bytes: 1, reason: "budget", retiredAt: Timestamp.now().description)
        try Data((absurd.line + "\n").utf8).write(to: URL(fileURLWithPath: receipts + "/" + ReceiptFiles.ledgerName))
        try Data().write(to: URL(fileURLWithPath: receipts + "/receipts-9223372036854775806.jsonl"))
        #expect(ReceiptRetirement.parse(absurd.line) == nil)
        #expect(ReceiptFiles.list(receipts).isEmpty)
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.maximumFileSize = 4096
        }
        let client = try harness.client()
        try Self.load(client, count: 100)
        try await Self.drained(client)
        try await harness.stop()
        #expect(ReceiptFiles.list(receipts).first?.index == 1)
    }
}
