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
    /// Set when the file could not be read when it was retired (not gzip, cut short, no sealed
    /// block): why. Its place in the chain is then unknown (`firstPrev` and `lastSeal` empty),
    /// and a replay reports the file as retired unread — its receipts lost to any proof.
    public var damage: String?

    enum CodingKeys: String, CodingKey {
        case file, index, receipts, lines, firstPrev = "first_prev", lastSeal = "last_seal", bytes, reason, retiredAt = "retired_at", damage
    }

    /// What names the file whatever the directory (daemons sharing a store record into one
    /// log): its last seal, or for a damaged one its name, size and damage.
    var identity: String { damage == nil ? lastSeal : "\(file)|\(bytes)|\(damage ?? "")" }

    /// The JSON line (without its newline).
    public var line: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(["retired": self])) ?? Data(), as: UTF8.self)
    }

    /// The retirement in a ledger or store line, if it is one.
    public static func parse(_ line: some StringProtocol) -> ReceiptRetirement? {
        guard let entry = (try? JSONDecoder().decode([String: ReceiptRetirement].self, from: Data(line.utf8)))?["retired"],
              ReceiptFiles.validIndexes.contains(entry.index) else { return nil }
        return entry
    }

    /// The directory's ledger, oldest first.
    public static func ledger(_ directory: String) -> [ReceiptRetirement] {
        guard let text = try? String(contentsOfFile: directory + "/" + ReceiptFiles.ledgerName, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap(parse)
    }

    /// The retired files that end at `prev` and reach back to the chain's start, oldest first;
    /// nil when `entries` do not link `prev` back to the genesis. A file retired damaged
    /// (`damage`) has no known place in the chain: the walk crosses it by file index — it must
    /// sit just before the oldest file linked so far, and the walk goes on from the last seal of
    /// the file recorded just before it (or ends, when it was the oldest file of all).
    /// `firstPresent`: the index of the oldest file still in the directory.
    static func chain(endingAt prev: String, in entries: [ReceiptRetirement], firstPresent: Int) -> [ReceiptRetirement]? {
        let intact = entries.filter { $0.damage == nil }
        let byLastSeal = Dictionary(intact.map { ($0.lastSeal, $0) }, uniquingKeysWith: { first, _ in first })
        let byIndex = Dictionary(entries.map { ($0.index, $0) }, uniquingKeysWith: { first, _ in first })
        let oldest = entries.map(\.index).min() ?? 0
        var chain: [ReceiptRetirement] = []
        var seal = prev
        var below = firstPresent
        let genesis = ReceiptChain.hex(ReceiptChain.genesis)
        while seal != genesis {
            guard chain.count <= entries.count else { return nil }
            if let entry = byLastSeal[seal], entry.index < below {
                chain.append(entry)
                seal = entry.firstPrev
                below = entry.index
            } else if let damaged = byIndex[below - 1], damaged.damage != nil {
                chain.append(damaged)
                below = damaged.index
                if damaged.index == oldest { break }
                // (Damaged too: its empty seal makes the next round cross it the same way.)
                guard let before = byIndex[below - 1] else { return nil }
                seal = before.lastSeal
            } else {
                return nil
            }
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
/// the load, as it does for a slow disk). The one exception is a shutdown that would take long:
/// after `ReceiptWriter.shutdownGrace` the writer drains the rest of its queue without waiting (a
/// daemon asked to stop must stop), so the directory may pass the budget by at most what was
/// still queued (the queue and the block the writer had taken: about twice
/// --receipt-queue-bytes), until the next start's first pass retires it.
final class ReceiptRetainer: Sendable {
    let directory: String
    let configuration: ReceiptConfiguration
    let fileMode: UInt16
    let anchor: ReceiptAnchor?
    let logger: Logger
    private let wake = DispatchSemaphore(value: 0)
    private let current = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let hurry = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    /// The writer's file index when the last whole pass began: every file before it is settled.
    private let settled = Atomic<Int>(0)
    /// Files retired and compressed by this process (status, tests).
    let retired = Atomic<Int>(0)
    let compressed = Atomic<Int>(0)
    /// Of `retired`, files that could not be read (recorded with their damage).
    let retiredDamaged = Atomic<Int>(0)
    /// Files whose retirement the store holds (one that could not be deleted then is not
    /// recorded again when deleting it is tried again, by this process or the next).
    private let recorded = Mutex<Set<String>>([])
    /// Files that could not be retired (not a regular file, or not deletable): left, counted in
    /// the budget, not tried again by this process.
    private let stuck = Mutex<Set<Int>>([])
    struct CannotDelete: Error {
        let message: String
    }
    /// Files whose compression failed once: kept plain, not tried again by this process.
    private let uncompressible = Mutex<Set<Int>>([])

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
        learnRecorded()
        // A compression (or a ledger cut) a stopped process left half-written.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix("receipts-") && name.hasSuffix(".tmp") {
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

    /// Learns the retirements the store already holds.
    func learnRecorded() {
        let recorded = ((try? anchor?.retirements()) ?? []).compactMap(ReceiptRetirement.parse).map(\.identity)
        self.recorded.withLock { $0.formUnion(recorded) }
    }

    /// The writer moved on to file `index`: every file before it is closed.
    func writing(_ index: Int) {
        current.store(index, ordering: .releasing)
        wake.signal()
    }

    /// Waits until the files before `index` are settled (compressed, and the kept ones within the
    /// policy), so that the writer may close `index` and open the next — or until `giveUp` (a
    /// shutdown past its grace).
    func waitUntilSettled(_ index: Int, giveUp: () -> Bool) {
        while settled.load(ordering: .acquiring) < index && !stopping.load(ordering: .acquiring) && !giveUp() { usleep(500) }
    }

    /// Finishes the pass under way and stops; `promptly`: stops between two files of the pass.
    func stop(promptly: Bool = false) {
        if promptly { hurry.store(true, ordering: .releasing) }
        stopping.store(true, ordering: .releasing)
        wake.signal()
        done.wait()
    }

    /// One pass: compress what is closed, then retire what the policy no longer keeps.
    func pass(writing: Int) {
        let closed = ReceiptFiles.list(directory).filter { $0.index < writing }
        for file in closed where !file.compressed && !uncompressible.withLock({ $0.contains(file.index) }) {
            // Stopping in a hurry: the pass stops between files; the next start goes on.
            if hurry.load(ordering: .acquiring) { return }
            do {
                try compress(file)
                compressed.add(1, ordering: .relaxed)
            } catch {
                uncompressible.withLock { _ = $0.insert(file.index) }
                logger.error("cannot compress a receipts file; it stays as it is (and counts in the budget as it is)", metadata: ["file": "\(file.path)", "error": "\(error)"])
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
        if access(target, F_OK) == 0 {
            // A compression a stopped process finished without removing the plain file (or a
            // copy put there): the plain file is the file, and its copy replaces the other.
            logger.notice("a receipts file is there both plain and compressed; the plain one is compressed again and replaces the other", metadata: ["file": "\(file.path)"])
        }
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
        // The copy keeps the file's time: age is counted from the last receipt written to it.
        var info = stat()
        if stat(file.path, &info) == 0 {
            var times = [info.st_atim, info.st_mtim]
            _ = futimens(fd, &times)
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
        let listed = ReceiptFiles.list(directory).filter { $0.index < writing }
        let stuck = self.stuck.withLock { $0 }
        // Files that cannot be retired still take their room; the others retire around them.
        var closed = listed.filter { !stuck.contains($0.index) }
        var files = listed.reduce(0) { $0 + Self.size($1.path) }
        let reserve = 3 * configuration.maximumFileSize
        let now = Date()
        while let oldest = closed.first, !hurry.load(ordering: .acquiring) {
            // The ledger is in the directory, so in the budget (it grows with each retirement).
            let total = files + Self.size(directory + "/" + ReceiptFiles.ledgerName)
            let tooMuch = budget > 0 && total + reserve > budget
            let tooOld = age > 0 && now.timeIntervalSince(Self.modified(oldest.path)) > age
            guard tooMuch || tooOld else { return }
            let bytes = Self.size(oldest.path)
            do {
                try retire(oldest, reason: tooMuch ? "budget" : "age", bytes: bytes)
                files -= bytes
            } catch let error as CannotDelete {
                // Not retired, or recorded but still there: set aside (never recorded twice), and
                // the next files retire around it.
                self.stuck.withLock { _ = $0.insert(oldest.index) }
                logger.error("cannot remove a receipts file; it is left where it is, counted in the budget, and newer files are retired around it", metadata: ["file": "\(oldest.path)", "error": "\(error.message)"])
            } catch {
                // The store could not record it: no retirement without its proof.
                logger.error("cannot retire a receipts file; it is kept", metadata: ["file": "\(oldest.path)", "error": "\(error)"])
                return
            }
            closed.removeFirst()
        }
    }

    /// Records the retirement (the store first, then the ledger), then deletes the file. A file
    /// that cannot be read (not gzip, cut short, no sealed block) is retired all the same — the
    /// policy must hold whatever the files hold — with the damage recorded, logged as an error and
    /// counted: a replay reports it.
    func retire(_ file: ReceiptFiles.File, reason: String, bytes: Int) throws {
        var info = stat()
        guard lstat(file.path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw CannotDelete(message: "\(file.name) is not a regular file (a directory, link or device put in its place); nothing recorded")
        }
        var summary = (lines: 0, receipts: 0, firstPrev: "", lastSeal: "")
        var damage: String?
        do {
            let read = ReceiptRetirement.summary(of: try ReceiptFiles.read(file))
            if let firstPrev = read.firstPrev, let lastSeal = read.lastSeal {
                summary = (read.lines, read.receipts, firstPrev, lastSeal)
            } else {
                damage = "it holds no sealed block (\(read.lines) lines)"
            }
        } catch {
            damage = "\(error)"
        }
        let entry = ReceiptRetirement(
            file: file.name, index: file.index, receipts: summary.receipts, lines: summary.lines, firstPrev: summary.firstPrev,
            lastSeal: summary.lastSeal, bytes: bytes, reason: reason, retiredAt: Timestamp.now().description, damage: damage)
        if !recorded.withLock({ $0.contains(entry.identity) }) {
            try anchor?.recordRetirement(entry.line)
            recorded.withLock { _ = $0.insert(entry.identity) }
            do { try appendToLedger(entry.line) } catch {
                // The ledger is the directory's copy; the store's record is the proof.
                logger.error("cannot add to the retirement ledger; the store holds the record", metadata: ["error": "\(error)"])
            }
        }
        guard unlink(file.path) == 0 else { throw CannotDelete(message: "cannot delete \(file.path) (its retirement is recorded): \(String(cString: strerror(errno)))") }
        syncDirectory()
        retired.add(1, ordering: .relaxed)
        if let damage {
            retiredDamaged.add(1, ordering: .relaxed)
            logger.error("retired a receipts file that cannot be read; its receipts are lost to any proof (recorded in the store)",
                         metadata: ["file": "\(file.name)", "reason": "\(reason)", "damage": "\(damage)", "bytes": "\(bytes)"])
        } else {
            logger.notice("retired a receipts file", metadata: ["file": "\(file.name)", "reason": "\(reason)", "receipts": "\(summary.receipts)", "bytes": "\(bytes)"])
        }
    }

    /// The most bytes the directory's ledger takes: a small share of the budget (it counts in
    /// it), at most 256 KiB. The store keeps every retirement; the ledger is the directory's copy
    /// of the newest ones (what a start-up reads: the chain's head once every file is retired).
    var ledgerLimit: Int {
        configuration.retentionBytes > 0 ? min(256 << 10, configuration.retentionBytes / 16) : 256 << 10
    }

    /// Appends one line to the directory's ledger, durably; past `ledgerLimit` it is cut to its
    /// newest entries (half the limit, at least the newest one).
    private func appendToLedger(_ text: String) throws {
        let ledger = directory + "/" + ReceiptFiles.ledgerName
        let fd = open(ledger, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, mode_t(fileMode))
        guard fd >= 0 else { throw ReceiptWriteError(message: "cannot open \(ledger): \(String(cString: strerror(errno)))") }
        let line = Array((text + "\n").utf8)
        let n = line.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard n == line.count, synced else { throw ReceiptWriteError(message: "cannot write \(ledger): \(String(cString: strerror(errno)))") }
        guard Self.size(ledger) > ledgerLimit, let whole = FileManager.default.contents(atPath: ledger) else { return }
        var kept: [UInt8] = []
        for entry in whole.split(separator: 0x0A).reversed() {
            guard kept.isEmpty || kept.count + entry.count + 1 <= ledgerLimit / 2 else { break }
            kept.insert(0x0A, at: 0)
            kept.insert(contentsOf: entry, at: 0)
        }
        let temporary = ledger + ".tmp"
        unlink(temporary)
        let out = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_t(fileMode))
        guard out >= 0 else { return }
        let written = kept.withUnsafeBytes { write(out, $0.baseAddress!, $0.count) }
        let durable = written == kept.count && fsync(out) == 0
        close(out)
        if durable && rename(temporary, ledger) == 0 { syncDirectory() } else { unlink(temporary) }
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
