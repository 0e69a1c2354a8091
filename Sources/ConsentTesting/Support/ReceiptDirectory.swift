import ConsentReceipts
import Foundation

/// Receipt lines and gap markers of a receipts directory (the hash chain's seal lines apart).
public struct ReceiptDirectory {
    public let path: String

    public init(path: String) { self.path = path }
    /// Every line of every file, seals included.
    public var allLines: [String] {
        ReceiptFiles.list(path).flatMap { file in
            String(decoding: (try? ReceiptFiles.read(file)) ?? [], as: UTF8.self).split(separator: "\n").map(String.init)
        }
    }
    /// Receipts and gap markers.
    public var lines: [String] { allLines.filter { !$0.hasPrefix(#"{"chain""#) } }
    /// The hash chain's seal lines.
    public var seals: [String] { allLines.filter { $0.hasPrefix(#"{"chain""#) } }
    public var receipts: [[String: Any]] {
        lines.filter { !$0.hasPrefix(#"{"gap""#) }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
    public var droppedInGaps: UInt64 {
        lines.filter { $0.hasPrefix(#"{"gap""#) }.compactMap { line -> UInt64? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let gap = object["gap"] as? [String: Any] else { return nil }
            return (gap["dropped"] as? NSNumber)?.uint64Value
        }.reduce(0, +)
    }
}
