import ConsentModel
import ConsentStore
import Crypto
import Foundation

/// The hash chain that makes receipts files tamper-evident: the writer seals every block it
/// appends with a line `{"chain":{"lines":N,"prev":"…","hash":"…"}}`, where `hash` is
/// SHA-256 of `prev` (32 bytes) followed by the block's N lines (each with its newline), and
/// `prev` is the hash of the block before — across files and daemon restarts; the first block
/// ever written starts from 32 zero bytes. A deleted, inserted, altered or reordered line, a
/// removed block or a removed file breaks the chain at its position. The writer thread hashes;
/// the event loops never do.
public enum ReceiptChain {
    /// The `prev` of the very first block.
    public static let genesis = [UInt8](repeating: 0, count: 32)

    /// The seal line of a block, as the writer writes it and the reader parses it.
    public struct Seal: Decodable, Sendable, Equatable {
        public var lines: Int
        public var prev: String
        public var hash: String
    }

    private struct SealLine: Decodable {
        var chain: Seal
    }

    /// The prefix that marks a seal line.
    static let marker = ReceiptSchema.sealMarker

    /// SHA-256 of `previous` followed by `block`.
    public static func hash(previous: [UInt8], block: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: previous)
        hasher.update(bufferPointer: block)
        return Array(hasher.finalize())
    }

    /// Appends the seal of `block` (whose lines start at `start` in `buffer` and run to its end)
    /// to `buffer`; returns the new chain head. The caller keeps the head only if the write succeeds.
    static func seal(_ buffer: inout [UInt8], from start: Int, previous: [UInt8]) -> [UInt8] {
        let (hash, lines) = buffer.withUnsafeBytes { raw -> ([UInt8], Int) in
            let block = UnsafeRawBufferPointer(rebasing: raw[start...])
            return (Self.hash(previous: previous, block: block), block.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) })
        }
        buffer += ReceiptSchema.sealMarker + Array(#"{"lines":"#.utf8) + Array(String(lines).utf8)
        buffer += Array(#","prev":""#.utf8) + Array(hex(previous).utf8)
        buffer += Array(#"","hash":""#.utf8) + Array(hex(hash).utf8) + Array("\"}}\n".utf8)
        return hash
    }

    /// The seal in a line, if it is one.
    public static func parse(_ line: some Collection<UInt8>) -> Seal? {
        guard line.starts(with: marker) else { return nil }
        return (try? JSONDecoder().decode(SealLine.self, from: Data(line)))?.chain
    }

    /// The chain head at the end of the newest receipts file in `directory` (the last seal's
    /// hash), or the genesis when there is none.
    static func head(of directory: String) -> [UInt8] {
        for file in ReceiptFiles.list(directory).reversed() {
            guard let data = try? ReceiptFiles.read(file) else { continue }
            for line in data.split(separator: 0x0A).reversed() {
                if let seal = parse(line), let hash = unhex(seal.hash) { return hash }
            }
        }
        // Every file retired: the chain goes on from the last retired file's last seal.
        if let last = ReceiptRetirement.ledger(directory).last(where: { $0.damage == nil }), let hash = unhex(last.lastSeal) { return hash }
        return genesis
    }

    /// Whether a seal with `hash` is in the receipts files of `directory` (searched from the
    /// newest file back; an anchor is at most about a second behind the newest seal).
    static func contains(seal hash: String, in directory: String) -> Bool {
        for file in ReceiptFiles.list(directory).reversed() {
            guard let data = try? ReceiptFiles.read(file) else { continue }
            for line in data.split(separator: 0x0A).reversed() where parse(line)?.hash == hash { return true }
        }
        return ReceiptRetirement.ledger(directory).contains { $0.lastSeal == hash }
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func unhex(_ text: String) -> [UInt8]? {
        let bytes = Array(text.utf8)
        guard bytes.count == 64 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            default: nil
            }
        }
        var index = 0
        while index < 64 {
            guard let high = value(bytes[index]), let low = value(bytes[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}

/// Checks the chain while a replay reads the files in order; reports each break at its lines.
struct ReceiptChainVerifier {
    struct Problem {
        /// `file:first-last`.
        var location: String
        var message: String
        /// True for lines that no seal covers (a failed write's remains, or a tail the daemon
        /// never sealed): a gap, failing only a strict replay. False for proof of tampering.
        var isGap: Bool
    }

    private var expected = ReceiptChain.genesis
    private var pending: [(file: String, line: Int, bytes: ArraySlice<UInt8>)] = []
    private(set) var problems: [Problem] = []
    private(set) var sealedBlocks = 0
    /// Every seal's hash seen (hex), to find the store's anchor among them.
    private(set) var sealHashes = Set<String>()

    /// The files before the first one read were retired (their retirement links the chain from
    /// the genesis to `head`): the chain goes on from there.
    mutating func continueAfterRetired(_ head: [UInt8]) {
        expected = head
        startsAfterRetirement = true
    }
    private var startsAfterRetirement = false

    /// A file could not be read (reported on its own): the chain goes on from the next block
    /// read, whatever its `prev`, rather than reporting the same break again.
    mutating func skipUnreadableFile() {
        pending.removeAll()
        resumeAnywhere = true
    }
    private var resumeAnywhere = false

    /// Feeds one non-empty line.
    mutating func line(_ bytes: ArraySlice<UInt8>, file: String, number: Int) {
        guard let seal = ReceiptChain.parse(bytes) else {
            pending.append((file, number, bytes))
            return
        }
        let location = "\(file):\(number)"
        if pending.count < seal.lines {
            let from = pending.first.map { "\($0.file):\($0.line)" } ?? location
            problems.append(Problem(location: from + "–" + location, message: "the seal at \(location) covers \(seal.lines) lines but only \(pending.count) are there: lines were deleted", isGap: false))
        } else {
            let extra = pending.count - seal.lines
            if extra > 0 {
                // The writer leaves unsealed bytes only where a write failed, and then starts the
                // next block with a gap marker saying so; anything else was put there later.
                let afterFailedWrite = ReceiptSchema.GapLine.parse(pending[extra].bytes).map {
                    if case .writeFailed = ReceiptSchema.GapReason(text: $0.gap.reason) { true } else { false }
                } ?? false
                problems.append(Problem(
                    location: range(pending[0..<extra]),
                    message: afterFailedWrite
                        ? "\(extra) line\(extra == 1 ? " is" : "s are") not covered by the hash chain (left by a failed write)"
                        : "\(extra) line\(extra == 1 ? " is" : "s are") not covered by the hash chain: inserted",
                    isGap: afterFailedWrite))
            }
            var block: [UInt8] = []
            for entry in pending[extra...] {
                block += entry.bytes
                block.append(0x0A)
            }
            let previous = ReceiptChain.unhex(seal.prev) ?? []
            if previous != expected && !resumeAnywhere {
                problems.append(Problem(location: location, message: expected == ReceiptChain.genesis && sealedBlocks == 0 && !startsAfterRetirement
                    ? "the chain does not start at the beginning: earlier receipts (files or blocks) are missing"
                    : "the chain is broken before this block: a block or a file before it was removed or altered", isGap: false))
            }
            let hash = block.withUnsafeBytes { ReceiptChain.hash(previous: previous, block: $0) }
            if ReceiptChain.hex(hash) != seal.hash {
                problems.append(Problem(location: range(pending[extra...]), message: "the sealed block does not match its hash: a line in it was altered, reordered or replaced", isGap: false))
            }
        }
        expected = ReceiptChain.unhex(seal.hash) ?? expected
        resumeAnywhere = false
        sealedBlocks += 1
        sealHashes.insert(seal.hash)
        pending.removeAll()
    }

    /// At the end of a file: lines after the last seal were never sealed. The writer seals
    /// every block it writes and starts a new file only between blocks, so this is a gap only
    /// in the newest file (a daemon that stopped mid-write); elsewhere the lines were added.
    mutating func endOfFile(isLast: Bool) {
        guard !pending.isEmpty else { return }
        problems.append(Problem(
            location: range(pending[...]),
            message: isLast
                ? "\(pending.count) line\(pending.count == 1 ? " is" : "s are") not sealed by the hash chain (the daemon stopped before sealing them)"
                : "\(pending.count) line\(pending.count == 1 ? " is" : "s are") after the last seal of a closed file: appended later",
            isGap: isLast))
        pending.removeAll()
    }

    private func range(_ entries: ArraySlice<(file: String, line: Int, bytes: ArraySlice<UInt8>)>) -> String {
        guard let first = entries.first, let last = entries.last else { return "" }
        return first.line == last.line ? "\(first.file):\(first.line)" : "\(first.file):\(first.line)–\(last.line)"
    }
}

/// Where the receipt writer anchors the chain's head outside the receipts files: the consent
/// store, which the daemon writes durably and a replay reads.
package struct ReceiptAnchor: Sendable {
    let load: @Sendable () throws -> String?
    let save: @Sendable (String) throws -> Void
    let recordBreak: @Sendable (String) throws -> Void
    let recordRetirement: @Sendable (String) throws -> Void
    /// Every retirement the store recorded (`ReceiptRetirement` lines).
    let retirements: @Sendable () throws -> [String]

    package init(store: any ConsentStorage) {
        load = { try store.receiptAnchor() }
        save = { try store.setReceiptAnchor($0) }
        recordBreak = { try store.recordReceiptChainBreak($0) }
        recordRetirement = { try store.appendReceiptLog(.retirements, $0) }
        retirements = { try store.receiptLog(.retirements) }
    }

    /// The anchored head: a seal's hash, and the receipts file it is in (`HASH FILE-INDEX`; an
    /// anchor written before the index was kept has none).
    struct Head: Equatable {
        var hash: String
        var file: Int?

        init(hash: String, file: Int?) {
            self.hash = hash
            self.file = file
        }

        init(_ text: String) {
            let parts = text.split(separator: " ")
            hash = parts.first.map(String.init) ?? ""
            file = parts.count > 1 ? Int(parts[1]) : nil
        }

        var text: String { file.map { "\(hash) \($0)" } ?? hash }

        /// Whether the file the anchor is in was retired (`retired`: file indexes the store
        /// recorded): its seals are gone with it, so the anchor can no longer be looked for.
        func isRetired(_ retired: Set<Int>) -> Bool { file.map { retired.contains($0) } ?? false }
    }
}
