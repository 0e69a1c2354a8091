import ConsentModel
import Foundation

/// The receipt file format's words, in one place for its writers (the encoder, the queue's and
/// the writer's gap lines, the seal) and its readers (replay, the chain verifier). A receipt
/// line's keys are `Receipt`'s, and a test encodes a line with the writer and decodes it with
/// `Receipt` (ReceiptSchemaTests).
///
/// A file holds three kinds of line: receipts (`{"id":…}`), gaps (`{"gap":{"dropped":N,
/// "reason":"…"}}`: receipts that should be here and are not) and seals (`{"chain":{…}}`, see
/// `ReceiptChain`).
package enum ReceiptSchema {
    /// How a gap line starts.
    static let gapMarker = Array(#"{"gap":"#.utf8)
    /// How a seal line starts.
    static let sealMarker = Array(#"{"chain":"#.utf8)

    /// The most bytes a receipt's signal keys and values take besides the strings themselves
    /// (their hashes, up to 64 GPP section ids, the count, the vendor).
    static let signalOverheadBytes = 1024

    /// The longest receipt line the encoder writes: every field capped, every byte escaped.
    package static let maximumLineBytes = 4096 + signalOverheadBytes + 3 * 6 * RequestContext.maximumSignalBytes

    /// A decision's word in a receipt.
    static func decisionWord(allowed: Bool) -> String { allowed ? "allow" : "deny" }

    /// The end of the context and the decision, up to the reason's opening quote, as the
    /// encoder writes them.
    static let decisionFields = (
        allow: Array((#"},"decision":""# + decisionWord(allowed: true) + #"","reason":""#).utf8),
        deny: Array((#"},"decision":""# + decisionWord(allowed: false) + #"","reason":""#).utf8)
    )

    /// Why receipts are missing, as a gap line says.
    enum GapReason: Equatable {
        /// The queue was full (`drop` mode).
        case queueFull
        /// Writing them failed (with the error).
        case writeFailed(String)

        private static let writeFailedPrefix = "write failed: "

        var text: String {
            switch self {
            case .queueFull: "queue full"
            case let .writeFailed(error): Self.writeFailedPrefix + error
            }
        }

        init(text: String) {
            self = text.hasPrefix(Self.writeFailedPrefix) ? .writeFailed(String(text.dropFirst(Self.writeFailedPrefix.count))) : .queueFull
        }
    }

    /// A gap line as read back.
    struct GapLine: Codable {
        struct Gap: Codable {
            var dropped: UInt64
            var reason: String
        }
        var gap: Gap

        /// The gap in `line`, if it is a gap line.
        static func parse<Bytes: Collection<UInt8>>(_ line: Bytes) -> GapLine? {
            guard line.starts(with: gapMarker) else { return nil }
            return try? JSONDecoder().decode(GapLine.self, from: Data(line))
        }
    }

    /// `{"gap":{"dropped":N,"reason":"…"}}` and a newline.
    static func appendGap(_ count: UInt64, reason: GapReason, to out: inout [UInt8]) {
        out.append(contentsOf: gapMarker)
        out.append(contentsOf: #"{"dropped":"#.utf8)
        out.append(contentsOf: String(count).utf8)
        out.append(contentsOf: #","reason":"#.utf8)
        var text = reason.text
        text.withUTF8 { ReceiptJSON.appendString(UnsafeRawBufferPointer($0), to: &out) }
        out.append(contentsOf: "}}\n".utf8)
    }
}
