import ConsentModel
@testable import ConsentServer
import ConsentTesting
import ConsentWire
import ConsentWorkload
import Foundation
import NIOCore
import SwiftProtobuf
import Testing

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
        var rng = SplitMix64(seed: 77)
        let subjects = ["alice", "bob", "carol", "nobody", "", "ünïcode", String(repeating: "x", count: 300)]
        let purposes = ["marketing.advertising.targeted", "marketing.email", "service.essential", "analytics.product", "marketing.sale_or_sharing", "nope", "MARKETING"]
        let data = ["user.behavior.browsing", "user.contact.email", "user.health", "user.location.precise", "nope"]
        let places = ["DE", "de", "US-CA", "US-ME", "US-WY", "JP", "", "Germany", "US-*"]
        var fast = 0
        var general = 0
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
            let outcome = processor.process(request)
            guard let expected = outcome.frameBySwiftProtobuf else { Issue.record("not answered inline"); continue }
            let actual = Array(buffer.readableBytesView)
            #expect(actual == expected, "request \(request)")
            #expect(outcome.frame == expected, "the general path's frame differs from SwiftProtobuf's: request \(request)")
            if actual != expected { break }
        }
        #expect(fast > 300)
        #expect(general > 200)
        try await harness.stop()
    }

    @Test func batchFastAndGeneralPathsGiveIdenticalBytes() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        _ = try client.record([grant("alice", "marketing"), grant("bob", "analytics", .deny)])
        var processor = harness.daemon.state.makeProcessor()
        var rng = SplitMix64(seed: 5)
        let subjects = ["alice", "bob", "nobody", "ü"]
        let purposes = ["marketing.email", "marketing.advertising.targeted", "service.essential", "analytics.product", "nope"]
        let data = ["user.contact.email", "user.behavior", "user.health"]
        var fast = 0
        for index in 0..<400 {
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
        #expect([UInt8]([0x12, 0x05, 0x0A]).withUnsafeBytes { ParsedCheck.parse($0) } == nil)  // length past the end
    }
}
