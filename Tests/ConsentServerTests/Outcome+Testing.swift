@testable import ConsentServer
import ConsentWire
import SwiftProtobuf

extension RequestProcessor.Outcome {
    /// An inline answer as SwiftProtobuf reads it; nil for offloaded work.
    var response: Consentd_V1_Response? {
        switch self {
        case let .respond(response): response
        case let .respondFrame(frame): try? Consentd_V1_Response(frame: frame)
        case .offload, .waitForSequence: nil
        }
    }

    /// An inline answer's frame as SwiftProtobuf — an encoder independent of `AnswerWriter` —
    /// writes the same message; nil for offloaded work.
    var frameBySwiftProtobuf: [UInt8]? {
        guard let response, let payload = try? response.serializedBytes() as [UInt8] else { return nil }
        return FrameCodec.frame(payload)
    }

    /// An inline answer's frame as the daemon writes it; nil for offloaded work.
    var frame: [UInt8]? {
        switch self {
        case let .respond(response): (try? response.serializedBytes() as [UInt8]).map(FrameCodec.frame)
        case let .respondFrame(frame): frame
        case .offload, .waitForSequence: nil
        }
    }
}
