import ConsentModel
@testable import ConsentReceipts
import Crypto
import Foundation
import PolicyEngine
import Testing

/// The writer and the readers of receipt files agree on every word: what the encoder writes,
/// `Receipt` reads back unchanged; gap lines round-trip through the one gap writer and reader.
@Suite struct ReceiptSchemaTests {
    static let policies = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Policies").path

    func encode(_ events: [(DecisionEvent, String)], subjects mode: ReceiptConfiguration.SubjectMode) throws -> [Receipt] {
        try encodeLines(events, subjects: mode).receipts
    }

    /// The receipts and the signals lines the encoder writes for `events`, one request each.
    func encodeLines(_ events: [(DecisionEvent, String)], subjects mode: ReceiptConfiguration.SubjectMode) throws -> (receipts: [Receipt], signals: [ReceiptSchema.SignalsLine.Signals]) {
        let set = try #require(PolicyDirectory.compile(Self.policies, vocabulary: Vocabulary()).result.policySet)
        var configuration = ReceiptConfiguration()
        configuration.subject = mode
        let queue = ReceiptQueue(configuration: configuration, instance: "t", hasher: { "h\($0.count)" })
        var receipts = ConnectionReceipts(queue: queue, connection: 7)
        for (event, _) in events {
            receipts.startRequest()
            receipts.append(event, set: set)
        }
        let lines = receipts.lines
        var start = 0
        var decoded: [Receipt] = []
        var signals: [ReceiptSchema.SignalsLine.Signals] = []
        for end in lines.ends {
            defer { start = end }
            let line = Array(UnsafeRawBufferPointer(rebasing: lines.bytes[start..<end]))
            if let signalsLine = try ReceiptSchema.SignalsLine.parse(line.dropLast()) {
                signals.append(signalsLine.signals)
            } else {
                decoded.append(try JSONDecoder().decode(Receipt.self, from: Data(line)))
            }
        }
        return (decoded, signals)
    }

    @Test func whatTheEncoderWritesReceiptReadsBack() throws {
        let set = try #require(PolicyDirectory.compile(Self.policies, vocabulary: Vocabulary()).result.policySet)
        let rule = Int32(try #require(set.rules.firstIndex { $0.id == "eea-targeted-ads" }))
        let record = CompactRecord(purpose: 0, choice: .grant, recordedAt: Timestamp(microseconds: 0), sequence: 41)
        let at = try #require(Timestamp(rfc3339: "2026-06-01T00:00:00.000001Z"))
        let decided = try #require(Timestamp(rfc3339: "2026-12-03T10:00:00.5Z"))
        var context = RequestContext(jurisdiction: "DE", gpc: true, uspOptOut: true, channel: "web", at: at)
        let tc = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
        context.setSignals(tcString: tc, gppString: "DBABMA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA", gppSectionIds: [2, 7, 7, 99], usPrivacy: "1YN\"", tcfVendorId: 755)
        var fullEvent = DecisionEvent(
            asked: .strings(subject: "jos\u{E9} \"q\"\\\u{1}", purpose: "marketing.advertising.targeted", dataCategory: "user.behavior", context: context),
            gpc: true, uspOptOut: true, requestedAt: at, decidedAt: decided,
            decision: Decision(effect: .allow, reason: .consentGranted, ruleIndex: rule, record: record), sequence: 99, kind: .check
        )
        fullEvent.signals = EventSignals(context)
        let events: [(DecisionEvent, String)] = [
            (fullEvent, "full"),
            (DecisionEvent(
                asked: .strings(subject: String(repeating: "x", count: 300), purpose: "p", dataCategory: "d", context: RequestContext()),
                gpc: false, uspOptOut: false, requestedAt: nil, decidedAt: decided,
                decision: .deny(.invalidRequest), sequence: 0, kind: .listUses
            ), "bare"),
        ]
        let (raw, rawSignals) = try encodeLines(events, subjects: .raw)
        #expect(raw.count == 2)
        let full = raw[0]
        #expect(full.id == "t-7-1")
        #expect(full.time == "2026-12-03T10:00:00.500000Z")
        #expect(full.subject == "jos\u{E9} \"q\"\\\u{1}")
        #expect(full.subject_hash == nil)
        #expect(full.purpose == "marketing.advertising.targeted" && full.data_category == "user.behavior")
        #expect(full.context.jurisdiction == "DE" && full.context.channel == "web")
        #expect(full.context.gpc == true && full.context.usp_opt_out == true)
        #expect(full.context.at.flatMap(Timestamp.init(rfc3339:)) == at)
        #expect(full.decision == ReceiptSchema.decisionWord(allowed: true))
        #expect(full.reason == ReasonCode.consentGranted.description)
        #expect(full.rule == "eea-targeted-ads")
        #expect(full.record == 41 && full.sequence == 99 && full.revision == set.revision)
        #expect(full.kind == "check")
        // The request's signals are in one signals line before its receipt, which names it.
        let lineSignals = try #require(rawSignals.first)
        #expect(rawSignals.count == 1 && full.context.signals == lineSignals.id && lineSignals.id == "t-7-s1")
        #expect(raw[1].context.signals == nil)
        #expect(lineSignals.tc_string == tc && lineSignals.us_privacy == "1YN\"")
        #expect(lineSignals.gpp_string?.hasPrefix("DBABMA~") == true)
        #expect(lineSignals.gpp_sid == [2, 7] && lineSignals.gpp_sid_count == 4 && lineSignals.tcf_vendor_id == 755)
        #expect(lineSignals.tc_string_sha256 == nil && !lineSignals.hasHashedStrings)
        // What a replay gives back decides as the request did: the same mask, "given", and count.
        let replayed = EventSignals(gppSectionMask: SignalAssessment.sectionMask(lineSignals.gpp_sid ?? []), gppSectionCount: lineSignals.gpp_sid_count ?? 0)
        #expect(replayed == EventSignals(gppSectionMask: EventSignals(context).gppSectionMask, gppSectionCount: 4))
        #expect(replayed.replayedSectionIds.count == 4 && SignalAssessment.sectionMask(replayed.replayedSectionIds) == SignalAssessment.sectionMask([2, 7]))
        let bare = raw[1]
        #expect(bare.subject == "\u{1}truncated: 300 bytes")
        #expect(bare.context.jurisdiction == nil && bare.context.channel == nil && bare.context.at == nil)
        #expect(bare.context.gpc == nil && bare.context.usp_opt_out == nil)
        #expect(bare.decision == ReceiptSchema.decisionWord(allowed: false) && bare.reason == ReasonCode.invalidRequest.description)
        #expect(bare.rule == nil && bare.record == 0 && bare.kind == "list_uses")
        let (hashed, hashedSignals) = try encodeLines(events, subjects: .hash)
        #expect(hashed[0].subject == nil && hashed[0].subject_hash == "h\("jos\u{E9} \"q\"\\\u{1}".utf8.count)")
        // Signal strings are as private as the subject: hashed (SHA-256) unless subjects are raw.
        let hashedLine = try #require(hashedSignals.first)
        #expect(hashed[0].context.signals == hashedLine.id)
        #expect(hashedLine.tc_string == nil && hashedLine.tc_string_sha256 == sha256Hex(tc))
        #expect(hashedLine.gpp_string == nil && hashedLine.gpp_string_sha256?.count == 64)
        #expect(hashedLine.us_privacy_sha256 == sha256Hex("1YN\""))
        #expect(hashedLine.gpp_sid == [2, 7] && hashedLine.tcf_vendor_id == 755)
        let omitted = try encode(events, subjects: .omit)
        #expect(omitted[0].subject == nil && omitted[0].subject_hash == nil)
    }

    func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    @Test func gapLinesRoundTrip() {
        for reason in [ReceiptSchema.GapReason.queueFull, .writeFailed("No space left on device \"x\"")] {
            var line: [UInt8] = []
            ReceiptSchema.appendGap(12, reason: reason, to: &line)
            #expect(line.last == UInt8(ascii: "\n"))
            let parsed = ReceiptSchema.GapLine.parse(line.dropLast())
            #expect(parsed?.gap.dropped == 12)
            #expect(parsed.map { ReceiptSchema.GapReason(text: $0.gap.reason) } == reason)
        }
        #expect(ReceiptSchema.GapLine.parse(Array(#"{"id":"x"}"#.utf8)) == nil)
    }

    /// The receipts' cached formatter writes what `Timestamp` writes with six fraction digits.
    @Test func theReceiptClockIsTheTimestampFormat() {
        var formatter = TimeFormatter()
        var rng = SystemRandomNumberGenerator()
        var values: [Int64] = [0, -1, 1, Timestamp.minimumValid.microseconds, Timestamp.maximumValid.microseconds]
        var micros = Int64(1_700_000_000_000_000)
        for _ in 0..<2000 {
            micros += Int64.random(in: 0...700_000, using: &rng)  // several per second, as under load
            values.append(micros)
        }
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 64)
        defer { buffer.deallocate() }
        for micros in values {
            var cursor = RawCursor(buffer)
            formatter.write(Timestamp(microseconds: micros), to: &cursor)
            let written = String(decoding: UnsafeBufferPointer(start: buffer, count: cursor.position - buffer), as: UTF8.self)
            #expect(written == Timestamp(microseconds: micros).rfc3339(fraction: .microseconds), "\(micros)")
        }
    }

    /// `queued` counts every receipt not yet on disk: in the queue, and taken by the writer but
    /// not yet appended (a writer waiting between files holds them in hand).
    @Test func queuedCountsReceiptsTheWriterHoldsUntilWrittenOrLost() {
        let queue = ReceiptQueue(configuration: ReceiptConfiguration(), instance: "t", hasher: nil)
        let lines = ReceiptLines()
        for index in 0..<5 {
            let text = Array("{\"id\":\"\(index)\"}\n".utf8)
            lines.reserve(text.count)
            var cursor = RawCursor(lines.end)
            for byte in text { cursor.put(byte) }
            lines.commit(until: cursor.position)
        }
        queue.enqueue(lines)
        #expect(queue.queued == 5)
        var taken: [UInt8] = []
        #expect(queue.take(swapping: &taken) == 5)
        #expect(queue.queued == 5, "taken, not yet written")
        queue.recordWritten(3)
        #expect(queue.queued == 2)
        queue.recordWriteFailure(lost: 2, error: "test")
        #expect(queue.queued == 0 && queue.writtenCount == 3 && queue.droppedCount == 2)
    }
}
