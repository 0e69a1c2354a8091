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

    /// How a signals line starts: `{"signals":{"id":…, "tc_string":…, …}}` holds one request's
    /// consent signals, written once before the first of its receipts; each receipt names it in
    /// `context.signals`.
    static let signalsMarker = Array(#"{"signals":"#.utf8)

    /// The most bytes a signals line takes besides the strings themselves (keys, hashes, up to 64
    /// GPP section ids, the count, the vendor, the id).
    static let signalOverheadBytes = 1024

    /// The longest line the encoder writes: a receipt (every field capped and escaped), or a
    /// signals line (three strings of at most 16 KiB, escaped).
    package static let maximumLineBytes = signalOverheadBytes + 3 * 6 * RequestContext.maximumSignalBytes

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
        /// The receipts file system had less free space than `--receipt-min-free-bytes`.
        case lowDiskSpace(String)

        private static let writeFailedPrefix = "write failed: "
        private static let lowDiskSpacePrefix = "free space below the floor: "

        var text: String {
            switch self {
            case .queueFull: "queue full"
            case let .writeFailed(error): Self.writeFailedPrefix + error
            case let .lowDiskSpace(detail): Self.lowDiskSpacePrefix + detail
            }
        }

        init(text: String) {
            if text.hasPrefix(Self.writeFailedPrefix) {
                self = .writeFailed(String(text.dropFirst(Self.writeFailedPrefix.count)))
            } else if text.hasPrefix(Self.lowDiskSpacePrefix) {
                self = .lowDiskSpace(String(text.dropFirst(Self.lowDiskSpacePrefix.count)))
            } else {
                self = .queueFull
            }
        }
    }

    /// A signals line as read back.
    struct SignalsLine: Decodable {
        struct Signals: Decodable {
            var id: String
            var tc_string: String?
            var gpp_string: String?
            var us_privacy: String?
            var tc_string_sha256: String?
            var gpp_string_sha256: String?
            var us_privacy_sha256: String?
            var gpp_sid: [UInt32]?
            var gpp_sid_count: Int?
            var tcf_vendor_id: UInt32?

            /// Whether a string is recorded only by its hash.
            var hasHashedStrings: Bool { tc_string_sha256 != nil || gpp_string_sha256 != nil || us_privacy_sha256 != nil }
        }
        var signals: Signals

        /// The signals in `line`, if it is a signals line (nil for another line; an error for a
        /// signals line that cannot be read).
        static func parse<Bytes: Collection<UInt8>>(_ line: Bytes) throws -> SignalsLine? {
            guard line.starts(with: signalsMarker) else { return nil }
            return try JSONDecoder().decode(SignalsLine.self, from: Data(line))
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
