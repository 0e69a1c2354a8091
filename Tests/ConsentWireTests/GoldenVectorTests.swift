import ConsentModel
import ConsentWire
import Foundation
import SwiftProtobuf
import Testing

/// One golden wire vector: `Vectors/NAME.binpb`, the bytes Debian's protoc (C++) writes for the
/// message in `Vectors/NAME.txtpb` (scripts/generate-vectors.sh; CI checks they agree).
struct GoldenVector: CustomTestStringConvertible, Sendable {
    let name: String
    /// The full message name from the text file's first line, e.g. `consentd.v1.Request`.
    let message: String
    let text: String
    let bytes: [UInt8]

    var testDescription: String { name }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors")

    static let all: [GoldenVector] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".txtpb") }.sorted().compactMap { file in
            let name = String(file.dropLast(".txtpb".count))
            guard let text = try? String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8),
                  let bytes = try? Data(contentsOf: directory.appendingPathComponent(name + ".binpb"))
            else { return GoldenVector(name: name, message: "", text: "", bytes: []) }
            let header = text.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
            let message = header.hasPrefix("# proto-message: ") ? String(header.dropFirst("# proto-message: ".count)) : ""
            return GoldenVector(name: name, message: message, text: text, bytes: Array(bytes))
        }
    }()
}

@Suite struct GoldenVectorTests {
    @Test func theVectorsAreThere() {
        #expect(GoldenVector.all.count >= 16, "expected the golden vectors in \(GoldenVector.directory.path)")
        #expect(GoldenVector.all.contains { $0.name.hasPrefix("request-") } && GoldenVector.all.contains { $0.name.hasPrefix("response-") })
    }

    /// SwiftProtobuf decodes each vector to the message its text form describes, finds nothing it
    /// does not know, and writes the same bytes back.
    @Test(arguments: GoldenVector.all)
    func swiftProtobufReadsAndWritesEachVector(_ vector: GoldenVector) throws {
        #expect(!vector.bytes.isEmpty, "\(vector.name): no .binpb beside the .txtpb (run scripts/generate-vectors.sh)")
        switch vector.message {
        case "consentd.v1.Request":
            let decoded = try roundTrip(Consentd_V1_Request.self, vector)
            #expect(!decoded.hasUnknownFieldsAnywhere)
        case "consentd.v1.Response":
            _ = try roundTrip(Consentd_V1_Response.self, vector)
        default:
            Issue.record("\(vector.name): first line must be '# proto-message: consentd.v1.Request' or '… Response', not \(vector.message)")
        }
    }

    private func roundTrip<M: SwiftProtobuf.Message & Equatable>(_ type: M.Type, _ vector: GoldenVector) throws -> M {
        let expected = try M(textFormatString: vector.text)
        let decoded = try M(serializedBytes: vector.bytes)
        #expect(decoded == expected, "\(vector.name): the bytes decode to \(decoded), the text says \(expected)")
        #expect(decoded.unknownFields.data.isEmpty)
        let written: [UInt8] = try decoded.serializedBytes()
        #expect(written == vector.bytes, "\(vector.name): SwiftProtobuf writes \(written), protoc wrote \(vector.bytes)")
        return decoded
    }

    /// The frame codec frames each vector as the delimited format says, and reads the prefix back.
    @Test(arguments: GoldenVector.all)
    func framesCarryTheVectorBehindItsLength(_ vector: GoldenVector) {
        let framed = FrameCodec.frame(vector.bytes)
        let prefix = framed.withUnsafeBytes { FrameCodec.readPrefix($0) }
        #expect(prefix == .length(UInt64(vector.bytes.count), prefixBytes: framed.count - vector.bytes.count))
        #expect(Array(framed.suffix(vector.bytes.count)) == vector.bytes)
    }
}

/// The answer writer and the request reader — consentd's own codec — against the vectors.
@Suite struct GoldenAnswerTests {
    /// `AnswerWriter` writes every Check and CheckBatch answer vector exactly as protoc wrote it.
    @Test(arguments: GoldenVector.all.filter { $0.name.hasPrefix("response-check") })
    func theAnswerWriterWritesEachAnswerVector(_ vector: GoldenVector) throws {
        let response = try Consentd_V1_Response(serializedBytes: vector.bytes)
        var frame: [UInt8] = []
        switch response.result {
        case let .check(check)?:
            let explanation: [UInt8]? = check.hasExplanation ? try check.explanation.serializedBytes() : nil
            #expect(AnswerWriter.writeCheckFrame(id: response.id, try Self.answer(check), explanation: explanation, message: check.message.isEmpty ? nil : check.message, into: &frame), "the writer filled its announced size")
        case let .checkBatch(batch)?:
            let policy = EncodedPolicy(revision: batch.policyRevision, rules: batch.results.map { ($0.ruleID, "", $0.obligations) })
            let results = batch.results.enumerated().map { index, result in
                BatchResult(
                    decision: UInt64(result.decision.rawValue), reason: UInt64(result.reason.rawValue),
                    ruleIndex: result.ruleID.isEmpty ? -1 : Int32(index), withObligations: true,
                    recordSequence: result.consentRecordSequence, legalBasis: UInt64(result.legalBasis.rawValue)
                )
            }
            #expect(AnswerWriter.writeBatchFrame(id: response.id, policy: policy, consentSequence: batch.consentSequence, count: results.count,
                                                 message: batch.message.isEmpty ? nil : batch.message, result: { results[$0] }, into: &frame), "the writer filled its announced size")
        default:
            Issue.record("\(vector.name) is not a Check or CheckBatch answer")
            return
        }
        #expect(frame == FrameCodec.frame(vector.bytes), "\(vector.name): AnswerWriter wrote \(frame)")
    }

    /// The wire answer `check` as the value `AnswerWriter` encodes.
    static func answer(_ check: Consentd_V1_CheckResponse) throws -> CheckAnswer {
        let hasRule = !check.ruleID.isEmpty || !check.ruleLocation.isEmpty || !check.obligations.isEmpty
        let policy = EncodedPolicy(revision: check.policyRevision, rules: hasRule ? [(check.ruleID, check.ruleLocation, check.obligations)] : [])
        var record: AnswerRecord?
        if check.hasConsentRecord {
            let wire = check.consentRecord
            #expect(wire.hasRecordedAt, "an answer's record always carries recorded_at")
            let recorded = try #require(Timestamp(seconds: wire.recordedAt.seconds, nanos: wire.recordedAt.nanos))
            let expires = wire.hasExpiresAt ? try #require(Timestamp(seconds: wire.expiresAt.seconds, nanos: wire.expiresAt.nanos)) : nil
            record = AnswerRecord(
                purpose: wire.purpose, dataCategory: wire.dataCategory, choice: UInt64(wire.choice.rawValue), recordedAt: recorded,
                expiresAt: expires, legalBasis: UInt64(wire.legalBasis.rawValue), source: wire.source,
                noticeVersion: wire.hasNoticeVersion ? wire.noticeVersion : nil, sequence: wire.sequence
            )
        }
        return CheckAnswer(
            decision: UInt64(check.decision.rawValue), reason: UInt64(check.reason.rawValue), ruleIndex: hasRule ? 0 : -1,
            withObligations: true, policy: policy, consentSequence: check.consentSequence, record: record,
            legalBasis: UInt64(check.legalBasis.rawValue)
        )
    }

    /// The zero-copy Check reader reads each request vector as SwiftProtobuf does, or declines it
    /// (anything but a plain ASCII Check without explain goes to the general decoder).
    @Test(arguments: GoldenVector.all.filter { $0.name.hasPrefix("request-") })
    func theCheckReaderReadsOrDeclinesEachRequestVector(_ vector: GoldenVector) throws {
        let request = try Consentd_V1_Request(serializedBytes: vector.bytes)
        let parsed = vector.bytes.withUnsafeBytes { ParsedCheck.parse($0) }
        func text(_ range: Range<Int>?) -> String? { range.map { String(decoding: vector.bytes[$0], as: UTF8.self) } }
        guard let parsed else {
            // Declining is right for anything but a plain Check, without explain, whose strings are ASCII.
            var plain = false
            if case let .check(check)? = request.method {
                let context = check.context
                plain = !check.explain && [check.subjectID, check.purpose, check.dataCategory, context.jurisdiction, context.channel, context.tcString, context.gppString, context.usPrivacy]
                    .allSatisfy { $0.utf8.allSatisfy { $0 < 0x80 } }
            }
            #expect(!plain, "\(vector.name): the reader declined a plain ASCII Check")
            return
        }
        guard case let .check(check)? = request.method else {
            Issue.record("\(vector.name): the reader read a request that is not a Check")
            return
        }
        #expect(!check.explain)
        #expect(parsed.id == request.id)
        #expect(text(parsed.subject) == check.subjectID && text(parsed.purpose) == check.purpose && text(parsed.data) == check.dataCategory)
        #expect((text(parsed.jurisdiction) ?? "") == check.context.jurisdiction && (text(parsed.channel) ?? "") == check.context.channel)
        #expect(parsed.gpc == check.context.gpc && parsed.uspOptOut == check.context.uspOptOut)
        #expect(parsed.at == (check.context.hasAt ? Timestamp(seconds: check.context.at.seconds, nanos: check.context.at.nanos) : nil))
        #expect((text(parsed.tcString) ?? "") == check.context.tcString && (text(parsed.gppString) ?? "") == check.context.gppString)
        #expect((text(parsed.usPrivacy) ?? "") == check.context.usPrivacy && parsed.tcfVendorId == check.context.tcfVendorID)
        #expect(parsed.gppSectionCount == check.context.gppSid.count)
        #expect(parsed.gppSectionMask == check.context.gppSid.reduce(UInt64(0)) { $1 < 64 ? $0 | 1 << UInt64($1) : $0 })
    }
}

/// A writer that does not fill the size it reserved writes nothing (the frame would be malformed).
@Suite struct ReservedWireBytesTests {
    @Test func aShortOrLongWriteIsRefusedAndLeavesNothing() {
        var sink: [UInt8] = [1, 2]
        #expect(sink.writeReserved(3) { $0.writeWireByte(9); $0.writeWireByte(9); $0.writeWireByte(9) })
        #expect(sink == [1, 2, 9, 9, 9])
        #expect(!sink.writeReserved(3) { $0.writeWireByte(7) })
        #expect(!sink.writeReserved(1) { cursor in [UInt8](repeating: 5, count: 4).withUnsafeBytes { cursor.writeWireBytes($0) } })
        #expect(!sink.writeReserved(1) { $0.writeWireByte(1); $0.writeWireByte(2) })
        #expect(sink == [1, 2, 9, 9, 9])
    }
}
