import ConsentModel
@testable import ConsentServer
import ConsentTesting
import ConsentWire
import ConsentWorkload
import Foundation
import NIOCore
import SwiftProtobuf
import Testing

/// Consent signal strings for generated requests: TC strings that grant, refuse and cannot be
/// read, GPP strings with TCF and US sections (well-formed and not), US Privacy strings, section
/// lists (packed by SwiftProtobuf; ids no section has; more than the limit) and vendors.
enum SignalPool {
    static let grantAll = "CQjh0IAQjh0IAAHABBENBkEAAP_AAAAAAAYgHzgAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACAAAAA"
    static let refusal = "CQjh0IAQjh0IAAHABBENBkEAAOKAAAAAAAYgHzgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACAAAAA"
    static let tcStrings = [grantAll, refusal, "CQjh0IAQjh0I", "not a TC string", "CQjh0IAQjh0IAAHABBENBkEAAP_AAAAAAAYgHzgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACAAAAEQABAfO", "ü"]
    static let gppStrings = [
        "DBABMA~" + grantAll, "DBABMA~CQjh0", "DBABLA~BVVaqqqqqqpk", "DBABLA~BVVpqqqqqqpk", "DBABLA~BVVqqqqqqqpk.Y", "DBABLA~BVVqqqqqqqpk",
        "DBABLA~BVVaq", "DBABTA~1YNN", "DBACNYA~" + grantAll + "~1YNN", "not gpp",
    ]
    static let usPrivacy = ["1YNN", "1YYN", "1---", "1NYN", "2YNN", "1YN"]

    static func add<R: RandomNumberGenerator>(to context: inout Consentd_V1_Context, _ rng: inout R) {
        guard rng.next() % 2 == 0 else { return }  // half the requests carry none
        func pick(_ pool: [String]) -> String { pool[Int(rng.next() % UInt64(pool.count))] }
        if rng.next() % 3 == 0 { context.tcString = pick(tcStrings) }
        if rng.next() % 3 == 0 { context.gppString = pick(gppStrings) }
        if rng.next() % 4 == 0 {
            context.gppSid = switch rng.next() % 5 {
            case 0: [2]
            case 1: [7, 7]
            case 2: [8, 99]
            case 3: [2, 6, 7]
            default: Array(repeating: 7, count: 65)  // over the limit: INVALID_REQUEST
            }
        }
        if rng.next() % 4 == 0 { context.usPrivacy = pick(usPrivacy) }
        if rng.next() % 5 == 0 { context.tcfVendorID = [12, 13, 999, 0][Int(rng.next() % 4)] }
    }
}

/// The allocation-free Check path must answer exactly — byte for byte — what the general path
/// (SwiftProtobuf + RequestProcessor.process) answers, and decline whatever it does not handle.
@Suite struct FastPathTests {
    @Test func fastAndGeneralPathsGiveIdenticalBytes() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        _ = try client.record([
            grant("alice", "marketing.advertising.targeted"),
            ConsentRecord(subject: "bob", purpose: "marketing", dataCategory: "user.behavior", choice: .deny, recordedAt: Timestamp(rfc3339: "2026-01-01T00:00:00Z")!, expiresAt: Timestamp(rfc3339: "2030-01-01T00:00:00Z")!, source: "web", noticeVersion: 0),
            grant("carol", "analytics", notice: 1),
        ])
        var processor = harness.daemon.state.makeProcessor()
        processor.pinnedNow = .now()  // both paths decide at one instant (a TC refusal's record says when)
        var rng = SplitMix64(seed: 77)
        let subjects = ["alice", "bob", "carol", "nobody", "", "ünïcode", String(repeating: "x", count: 300)]
        let purposes = ["marketing.advertising.targeted", "marketing.email", "service.essential", "analytics.product", "marketing.sale_or_sharing", "nope", "MARKETING"]
        let data = ["user.behavior.browsing", "user.contact.email", "user.health", "user.location.precise", "nope"]
        let places = ["DE", "de", "US-CA", "US-ME", "US-WY", "JP", "", "Germany", "US-*"]
        var fast = 0
        var general = 0
        var fastWithSignals = 0
        for index in 0..<3000 {
            var request = Consentd_V1_Request()
            request.id = UInt64(index) * 7919
            request.check = Consentd_V1_CheckRequest.with {
                $0.subjectID = subjects[Int(rng.next() % UInt64(subjects.count))]
                $0.purpose = purposes[Int(rng.next() % UInt64(purposes.count))]
                $0.dataCategory = data[Int(rng.next() % UInt64(data.count))]
                $0.context.jurisdiction = places[Int(rng.next() % UInt64(places.count))]
                $0.context.gpc = rng.next() % 3 == 0
                $0.context.uspOptOut = rng.next() % 5 == 0
                if rng.next() % 4 != 0 { $0.context.at = Google_Protobuf_Timestamp(Timestamp(rfc3339: "2026-06-01T00:00:00Z")!) }
                if rng.next() % 6 == 0 { $0.context.channel = ["web", "app"][Int(rng.next() % 2)] }
                $0.explain = rng.next() % 20 == 0
                SignalPool.add(to: &$0.context, &rng)
            }
            let bytes: [UInt8] = try request.serializedBytes()
            var buffer = ByteBufferAllocator().buffer(capacity: 256)
            let tookFastPath = bytes.withUnsafeBytes { processor.fastCheck($0, into: &buffer) }
            guard tookFastPath else {
                #expect(buffer.readableBytes == 0)
                general += 1
                continue
            }
            fast += 1
            let context = request.check.context
            if !context.tcString.isEmpty || !context.gppString.isEmpty || !context.usPrivacy.isEmpty { fastWithSignals += 1 }
            let outcome = processor.process(request)
            guard let expected = outcome.frameBySwiftProtobuf else { Issue.record("not answered inline"); continue }
            let actual = Array(buffer.readableBytesView)
            #expect(actual == expected, "request \(request)")
            #expect(outcome.frame == expected, "the general path's frame differs from SwiftProtobuf's: request \(request)")
            if actual != expected { break }
        }
        #expect(fast > 300)
        #expect(general > 200)
        #expect(fastWithSignals > 100, "requests with signal strings should mostly be answered by the fast path")
        try await harness.stop()
    }

    @Test func batchFastAndGeneralPathsGiveIdenticalBytes() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        _ = try client.record([grant("alice", "marketing"), grant("bob", "analytics", .deny)])
        var processor = harness.daemon.state.makeProcessor()
        processor.pinnedNow = .now()
        var rng = SplitMix64(seed: 5)
        let subjects = ["alice", "bob", "nobody", "ü"]
        let purposes = ["marketing.email", "marketing.advertising.targeted", "service.essential", "analytics.product", "nope"]
        let data = ["user.contact.email", "user.behavior", "user.health"]
        var fast = 0
        for index in 0..<800 {
            var request = Consentd_V1_Request()
            request.id = UInt64(index)
            request.checkBatch = Consentd_V1_CheckBatchRequest.with {
                $0.items = (0..<Int(rng.next() % 20)).map { _ in
                    Consentd_V1_CheckItem.with {
                        $0.subjectID = subjects[Int(rng.next() % UInt64(subjects.count))]
                        $0.purpose = purposes[Int(rng.next() % UInt64(purposes.count))]
                        $0.dataCategory = data[Int(rng.next() % UInt64(data.count))]
                    }
                }
                $0.context.jurisdiction = ["DE", "US-CA", "JP", "us-ca"][Int(rng.next() % 4)]
                $0.context.at = Google_Protobuf_Timestamp(Timestamp(rfc3339: "2026-06-01T00:00:00Z")!)
                SignalPool.add(to: &$0.context, &rng)
            }
            let bytes: [UInt8] = try request.serializedBytes()
            var buffer = ByteBufferAllocator().buffer(capacity: 256)
            guard bytes.withUnsafeBytes({ processor.fastBatch($0, into: &buffer) }) else {
                #expect(buffer.readableBytes == 0)
                continue
            }
            fast += 1
            let outcome = processor.process(request)
            guard let expected = outcome.frameBySwiftProtobuf else { Issue.record("not inline"); continue }
            #expect(Array(buffer.readableBytesView) == expected, "request \(request)")
            #expect(outcome.frame == expected, "the general path's frame differs from SwiftProtobuf's: request \(request)")
        }
        #expect(fast > 50)
        try await harness.stop()
    }

    @Test func theParserDeclinesWhatItDoesNotHandle() throws {
        func parse(_ request: Consentd_V1_Request, extra: [UInt8] = []) throws -> ParsedCheck? {
            let bytes: [UInt8] = try request.serializedBytes() + extra
            return bytes.withUnsafeBytes { ParsedCheck.parse($0) }
        }
        var check = Consentd_V1_Request()
        check.id = 3
        check.check = Consentd_V1_CheckRequest.with { $0.subjectID = "a"; $0.purpose = "p"; $0.dataCategory = "d" }
        #expect(try parse(check)?.id == 3)
        #expect(try parse(check, extra: [0xA8, 0x06, 0x01]) == nil)  // unknown field
        var status = Consentd_V1_Request()
        status.status = Consentd_V1_StatusRequest()
        #expect(try parse(status) == nil)
        var explain = check
        explain.check.explain = true
        #expect(try parse(explain) == nil)
        #expect([UInt8]([0x08]).withUnsafeBytes { ParsedCheck.parse($0) } == nil)  // truncated varint
        // gpp_sid, unpacked (one tag per id) as another encoder may write it, and packed as
        // SwiftProtobuf writes it: both readers see the same ids.
        let context: [UInt8] = [0x40, 0x02, 0x40, 0x07, 0x40, 0x46, 0x40, 0x07]
        let body: [UInt8] = [0x0A, 0x01, 0x61, 0x12, 0x01, 0x70, 0x1A, 0x01, 0x64, 0x22, UInt8(context.count)] + context
        let unpacked: [UInt8] = [0x08, 0x01, 0x12, UInt8(body.count)] + body
        let decoded = try Consentd_V1_Request(serializedBytes: unpacked)
        #expect(decoded.check.context.gppSid == [2, 7, 70, 7])
        for bytes in [unpacked, try decoded.serializedBytes()] {
            let parsed = try #require(bytes.withUnsafeBytes { ParsedCheck.parse($0) })
            #expect(parsed.gppSectionMask == (1 << 2 | 1 << 7) && parsed.gppSectionCount == 4)
        }
        #expect([UInt8]([0x12, 0x05, 0x0A]).withUnsafeBytes { ParsedCheck.parse($0) } == nil)  // length past the end
    }
}
