import ConsentModel
import ConsentWire
import SwiftProtobuf
import Testing

@Suite struct FrameCodecTests {
    @Test(arguments: [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 20, UInt64(UInt32.max), UInt64.max])
    func varintsRoundTrip(value: UInt64) {
        var bytes: [UInt8] = []
        FrameCodec.appendVarint(value, to: &bytes)
        #expect(bytes.count == FrameCodec.varintSize(value))
        let prefix = bytes.withUnsafeBytes { FrameCodec.readPrefix($0) }
        #expect(prefix == .length(value, prefixBytes: bytes.count))
        // Every proper prefix of the varint is incomplete.
        for cut in 0..<bytes.count {
            #expect(bytes[..<cut].withUnsafeBytes { FrameCodec.readPrefix($0) } == .incomplete)
        }
    }

    @Test func overlongOrOverflowingVarintsAreMalformed() {
        let eleven = [UInt8](repeating: 0xFF, count: 11)
        #expect(eleven.withUnsafeBytes { FrameCodec.readPrefix($0) } == .malformed)
        let tenthTooBig: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]
        #expect(tenthTooBig.withUnsafeBytes { FrameCodec.readPrefix($0) } == .malformed)
    }

    @Test func framesMatchSwiftProtobufsDelimitedFormat() throws {
        var request = Consentd_V1_Request()
        request.id = 42
        request.check = Consentd_V1_CheckRequest.with { $0.subjectID = "alice"; $0.purpose = "marketing"; $0.dataCategory = "user" }
        let payload: [UInt8] = try request.serializedBytes()
        let framed = FrameCodec.frame(payload)
        guard case let .length(length, prefixBytes) = framed.withUnsafeBytes({ FrameCodec.readPrefix($0) }) else {
            Issue.record("no prefix")
            return
        }
        #expect(Int(length) == payload.count)
        let decoded = try Consentd_V1_Request(serializedBytes: Array(framed[prefixBytes...]))
        #expect(decoded == request)
    }

    @Test func modelMappingsRoundTrip() throws {
        for reason in ReasonCode.allCases { #expect(Consentd_V1_Reason(reason).model == reason) }
        for basis in LegalBasis.allCases { #expect(Consentd_V1_LegalBasis(basis).model == basis) }
        #expect(Consentd_V1_LegalBasis.unspecified.model == .consent)
        for value: Int64 in [0, 1, -1, 1_780_272_000_123_456, -999_999, -1_000_001] {
            let timestamp = Timestamp(microseconds: value)
            #expect(Google_Protobuf_Timestamp(timestamp).model == timestamp)
            #expect(Google_Protobuf_Timestamp(timestamp).nanos >= 0)
        }
        let record = ConsentRecord(sequence: 9, subject: "s", purpose: "p", dataCategory: "d", choice: .deny, recordedAt: Timestamp(seconds: 5),
                                   expiresAt: Timestamp(seconds: 9), legalBasis: .contract, source: "app", noticeVersion: 0, jurisdiction: "DE", evidence: "e")
        var back = try Consentd_V1_ConsentRecord(record).model(now: Timestamp(seconds: 0))
        back.sequence = 9
        #expect(back == record)
        let context = RequestContext(jurisdiction: "US-CA", gpc: true, uspOptOut: true, channel: "web", at: Timestamp(seconds: 7))
        #expect(try Consentd_V1_Context(context).model() == context)
        #expect(try Consentd_V1_Context().model() == RequestContext())
    }

    @Test func unknownFieldsAreDetectedAtEveryLevel() throws {
        var request = Consentd_V1_Request()
        request.check = Consentd_V1_CheckRequest()
        #expect(!request.hasUnknownFields)
        var bytes: [UInt8] = try request.serializedBytes()
        bytes += [0xA8, 0x06, 0x01]  // field 101, varint 1: unknown to this build
        #expect(try Consentd_V1_Request(serializedBytes: bytes).hasUnknownFields)
        var check = Consentd_V1_CheckRequest()
        check.subjectID = "a"
        var inner: [UInt8] = try check.serializedBytes()
        inner += [0xA8, 0x06, 0x01]
        var outer: [UInt8] = [0x12]  // field 2 (check), length-delimited
        FrameCodec.appendVarint(UInt64(inner.count), to: &outer)
        outer += inner
        #expect(try Consentd_V1_Request(serializedBytes: outer).hasUnknownFields)
    }
}
