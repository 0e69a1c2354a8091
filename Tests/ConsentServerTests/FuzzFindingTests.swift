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
