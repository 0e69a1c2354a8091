import CompressNIO
import ConsentModel
import Foundation
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A receipts file retired under the retention policy: what a replay needs to say so instead of
/// reporting the file as removed — where it sat in the hash chain (the `prev` of its first block
/// and the hash of its last seal), how many receipts it held, when and why it went. One JSON line
/// each in the directory's ledger (`receipts-retired.jsonl`) and in the store
/// (`ReceiptLog.retirements`), written before the file is deleted; the store's copy is the proof
/// (whoever can delete receipts files cannot write the store).
public struct ReceiptRetirement: Codable, Sendable, Equatable {
    public var file: String
    public var index: Int
    /// Receipt lines (decisions) in the file.
    public var receipts: Int
    /// Every line, seals and gap and signals lines included.
    public var lines: Int
    /// The `prev` of the file's first sealed block (hex).
    public var firstPrev: String
    /// The hash of the file's last seal (hex): the next file's first block continues from it.
    public var lastSeal: String
    /// Bytes the file took on disk.
    public var bytes: Int
    /// `budget` (the directory passed --receipt-retention-bytes) or `age` (--receipt-retention-days).
    public var reason: String
    public var retiredAt: String

    enum CodingKeys: String, CodingKey {
        case file, index, receipts, lines, firstPrev = "first_prev", lastSeal = "last_seal", bytes, reason, retiredAt = "retired_at"
    }

    /// The JSON line (without its newline).
    public var line: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(["retired": self])) ?? Data(), as: UTF8.self)
    }

    /// The retirement in a ledger or store line, if it is one.
    public static func parse(_ line: some StringProtocol) -> ReceiptRetirement? {
        (try? JSONDecoder().decode([String: ReceiptRetirement].self, from: Data(line.utf8)))?["retired"]
    }

    /// The directory's ledger, oldest first.
    public static func ledger(_ directory: String) -> [ReceiptRetirement] {
        guard let text = try? String(contentsOfFile: directory + "/" + ReceiptFiles.ledgerName, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap(parse)
    }

    /// The retired files that end at `prev` and reach back to the chain's start, oldest first;
    /// nil when `entries` do not link `prev` back to the genesis.
    static func chain(endingAt prev: String, in entries: [ReceiptRetirement]) -> [ReceiptRetirement]? {
        let byLastSeal = Dictionary(entries.map { ($0.lastSeal, $0) }, uniquingKeysWith: { first, _ in first })
        var chain: [ReceiptRetirement] = []
        var seal = prev
        let genesis = ReceiptChain.hex(ReceiptChain.genesis)
        while seal != genesis {
            guard let entry = byLastSeal[seal], chain.count <= entries.count else { return nil }
            chain.append(entry)
            seal = entry.firstPrev
        }
        return chain.reversed()
    }

    /// What retiring needs to know of a file's lines: counts, and where it sits in the chain.
    static func summary(of bytes: [UInt8]) -> (lines: Int, receipts: Int, firstPrev: String?, lastSeal: String?) {
        var lines = 0, receipts = 0
        var firstPrev: String?, lastSeal: String?
        for line in bytes.split(separator: 0x0A) {
            lines += 1
            if let seal = ReceiptChain.parse(line) {
                if firstPrev == nil { firstPrev = seal.prev }
                lastSeal = seal.hash
            } else if line.starts(with: ReceiptBlocks.receiptPrefix) {
                receipts += 1
            }
        }
        return (lines, receipts, firstPrev, lastSeal)
    }
}

/// Keeps a receipts directory within its retention policy, on a thread of its own (the writer
/// never waits for it): every closed receipts file is compressed (gzip, through compress-nio's
/// zlib: written beside, checked by decompressing, then swapped in), and the oldest closed files
/// are retired — recorded in the store and the ledger, then deleted — while the directory would
/// otherwise pass `--receipt-retention-bytes` or hold files older than `--receipt-retention-days`.
///
/// The budget holds at every moment, not only after a pass: the files already closed are kept
/// to the budget less three file sizes — room for the file being written, one closed file not
/// yet compressed, and its compressed copy while it is written — and the writer starts a new
/// file only once the pass for the one before has finished (`waitUntilSettled`; with files of
/// tens of megabytes it has long finished, with tiny ones the writer waits and its queue takes
/// the load, as it does for a slow disk).
final class ReceiptRetainer: Sendable {
    let directory: String
    let configuration: ReceiptConfiguration
    let fileMode: UInt16
    let anchor: ReceiptAnchor?
    let logger: Logger
    private let wake = DispatchSemaphore(value: 0)
    private let current = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    /// The writer's file index when the last whole pass began: every file before it is settled.
    private let settled = Atomic<Int>(0)
    /// Files retired and compressed by this process (status, tests).
    let retired = Atomic<Int>(0)
    let compressed = Atomic<Int>(0)

    init(directory: String, configuration: ReceiptConfiguration, fileMode: UInt16, anchor: ReceiptAnchor?, logger: Logger) {
        self.directory = directory
        self.configuration = configuration
        self.fileMode = fileMode
        self.anchor = anchor
        self.logger = logger
    }

    /// Starts the thread; `index` is the file the writer appends to (never touched).
    func start(writing index: Int) {
        current.store(index, ordering: .releasing)
        // A compression a stopped process left half-written.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix("receipts-") && name.hasSuffix(".gz.tmp") {
            unlink(directory + "/" + name)
        }
        let thread = Thread { [self] in
            while !stopping.load(ordering: .acquiring) {
                let writing = current.load(ordering: .acquiring)
                pass(writing: writing)
                settled.store(writing, ordering: .releasing)
                // Age is checked at least once a minute even when no file closes.
                if current.load(ordering: .acquiring) == writing { _ = wake.wait(timeout: .now() + .seconds(60)) }
            }
            done.signal()
        }
        thread.name = "consentd-receipts-retention"
        thread.start()
    }

    /// The writer moved on to file `index`: every file before it is closed.
    func writing(_ index: Int) {
        current.store(index, ordering: .releasing)
        wake.signal()
    }

    /// Waits until the files before `index` are settled (compressed, and the kept ones within the
    /// policy), so that the writer may close `index` and open the next.
    func waitUntilSettled(_ index: Int) {
        while settled.load(ordering: .acquiring) < index && !stopping.load(ordering: .acquiring) { usleep(500) }
    }

    /// Finishes the pass under way and stops.
    func stop() {
        stopping.store(true, ordering: .releasing)
        wake.signal()
        done.wait()
    }

    /// One pass: compress what is closed, then retire what the policy no longer keeps.
    func pass(writing: Int) {
        let closed = ReceiptFiles.list(directory).filter { $0.index < writing }
        for file in closed where !file.compressed {
            do {
                try compress(file)
                compressed.add(1, ordering: .relaxed)
            } catch {
                logger.error("cannot compress a receipts file; it stays as it is", metadata: ["file": "\(file.path)", "error": "\(error)"])
            }
        }
        retire(writing: writing)
    }

    /// Writes `file` compressed beside it, checks the copy decompresses to the same bytes, makes
    /// it durable, and only then removes the plain file.
    func compress(_ file: ReceiptFiles.File) throws {
        let plain = try ReceiptFiles.read(file)
        var input = ByteBuffer(bytes: plain)
        var output = try input.compress(with: .gzip(configuration: .init(compressionLevel: 6)))
        let bytes = output.readBytes(length: output.readableBytes) ?? []
        var check = ByteBuffer(bytes: bytes)
        // (A maxSize near the output's size can make compress-nio's growing loop spin.)
        let restored = try check.decompress(with: .gzip(), maxSize: 1 << 34)
        guard restored.readableBytesView.elementsEqual(plain) else {
            throw ReceiptWriteError(message: "the compressed copy of \(file.path) does not decompress to the file")
        }
        let target = file.path + ".gz"
        let temporary = target + ".tmp"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_t(fileMode))
        guard fd >= 0 else { throw ReceiptWriteError(message: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let message = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw ReceiptWriteError(message: "cannot write \(temporary): \(message)")
            }
            written += n
        }
        let synced = fsync(fd) == 0
        close(fd)
        guard synced, rename(temporary, target) == 0 else {
            unlink(temporary)
            throw ReceiptWriteError(message: "cannot make \(target) durable: \(String(cString: strerror(errno)))")
        }
        syncDirectory()
        unlink(file.path)
        syncDirectory()
    }

    /// Retires the oldest closed files while the policy says to.
    func retire(writing: Int) {
        let budget = configuration.retentionBytes
        let age = configuration.retentionDays * 86_400
        guard budget > 0 || age > 0 else { return }
        var closed = ReceiptFiles.list(directory).filter { $0.index < writing }
        var total = closed.reduce(0) { $0 + Self.size($1.path) }
        let reserve = 3 * configuration.maximumFileSize
        let now = Date()
        while let oldest = closed.first {
            let tooMuch = budget > 0 && total + reserve > budget
            let tooOld = age > 0 && now.timeIntervalSince(Self.modified(oldest.path)) > age
            guard tooMuch || tooOld else { return }
            let bytes = Self.size(oldest.path)
            do {
                try retire(oldest, reason: tooMuch ? "budget" : "age", bytes: bytes)
            } catch {
                logger.error("cannot retire a receipts file; it is kept", metadata: ["file": "\(oldest.path)", "error": "\(error)"])
                return
            }
            total -= bytes
            closed.removeFirst()
        }
    }

    /// Records the retirement (the store first, then the ledger), then deletes the file.
    func retire(_ file: ReceiptFiles.File, reason: String, bytes: Int) throws {
        let summary = ReceiptRetirement.summary(of: try ReceiptFiles.read(file))
        guard let firstPrev = summary.firstPrev, let lastSeal = summary.lastSeal else {
            throw ReceiptWriteError(message: "\(file.path) holds no sealed block")
        }
        let entry = ReceiptRetirement(
            file: file.name, index: file.index, receipts: summary.receipts, lines: summary.lines, firstPrev: firstPrev, lastSeal: lastSeal,
            bytes: bytes, reason: reason, retiredAt: Timestamp.now().description)
        try anchor?.recordRetirement(entry.line)
        let ledger = directory + "/" + ReceiptFiles.ledgerName
        let fd = open(ledger, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, mode_t(fileMode))
        guard fd >= 0 else { throw ReceiptWriteError(message: "cannot open \(ledger): \(String(cString: strerror(errno)))") }
        let line = Array((entry.line + "\n").utf8)
        let n = line.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard n == line.count, synced else { throw ReceiptWriteError(message: "cannot write \(ledger): \(String(cString: strerror(errno)))") }
        guard unlink(file.path) == 0 else { throw ReceiptWriteError(message: "cannot delete \(file.path): \(String(cString: strerror(errno)))") }
        syncDirectory()
        retired.add(1, ordering: .relaxed)
        logger.notice("retired a receipts file", metadata: ["file": "\(file.name)", "reason": "\(reason)", "receipts": "\(summary.receipts)", "bytes": "\(bytes)"])
    }

    private func syncDirectory() {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    static func size(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    static func modified(_ path: String) -> Date {
        var info = stat()
        guard stat(path, &info) == 0 else { return Date() }
        return Date(timeIntervalSince1970: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
    }

    /// Bytes free for an unprivileged writer on the file system of `directory` (nil: unknown).
    static func freeBytes(_ directory: String) -> Int? {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return nil }
        return Int(clamping: UInt64(info.f_bavail) &* UInt64(info.f_frsize))
    }
}
