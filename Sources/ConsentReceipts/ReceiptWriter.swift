import ConsentModel
import Foundation
import CompressNIO
import Logging
import NIOCore
import PolicyEngine
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The background writer: takes everything queued, appends it to the current receipts file, and
/// starts a new file past the size limit. Runs on a thread of its own (writes and fsyncs block).
/// At graceful shutdown it is the last service to stop: the listener has answered everything it
/// read by then, and the writer drains the queue, fsyncs and exits.
public final class ReceiptWriter: Service, Sendable {
    let queue: ReceiptQueue
    let directory: String
    let logger: Logger
    private let stopping = Atomic<Bool>(false)
    /// When shutdown began (`DispatchTime` nanoseconds; 0: running).
    private let stopRequestedAt = Atomic<UInt64>(0)
    /// How long, at shutdown, the writer still waits for retirement passes between files (the
    /// budget holds through an ordinary shutdown); past it, the rest of the queue is written
    /// without waiting, so that a daemon asked to stop stops — a supervisor's kill would lose
    /// the receipts still queued, unmarked.
    static let shutdownGrace: UInt64 = 5_000_000_000
    private var shutdownGraceOver: Bool {
        let since = stopRequestedAt.load(ordering: .acquiring)
        return since != 0 && DispatchTime.now().uptimeNanoseconds - since > Self.shutdownGrace
    }
    private let paused = Atomic<Bool>(false)
    private let startIndex: Int
    private let fileMode: UInt16
    private let device: String?
    /// The hash chain's head when this writer started (the last seal of the newest file).
    private let startHead: [UInt8]
    /// Where the chain's head is anchored outside the files (the consent store), if anywhere.
    private let anchor: ReceiptAnchor?
    /// Compresses closed files and retires old ones (`ReceiptRetainer`); nil when every file is a
    /// test's device.
    let retainer: ReceiptRetainer?

    /// Holds the writer still (tests use it to fill the queue deterministically).
    func setPaused(_ value: Bool) { paused.store(value, ordering: .releasing) }

    /// Creates the receipts directory if needed and checks it can be written (the daemon refuses
    /// to start otherwise).
    package init(queue: ReceiptQueue, directory: String, fileMode: UInt16 = 0o600, anchor: ReceiptAnchor? = nil, device: String? = nil, logger: Logger) throws {
        self.device = device
        self.queue = queue
        self.directory = directory
        self.logger = logger
        self.fileMode = fileMode
        self.anchor = anchor
        try ReceiptFiles.prepare(directory, fileMode: fileMode)
        // Numbering goes on after every file there ever was: the files still here, and those
        // retired (the store's record, and the ledger's copy), so that a directory whose files
        // were all retired does not start again at 1.
        let recorded = ((try? anchor?.retirements()) ?? []).compactMap(ReceiptRetirement.parse)
        let retiredIndexes = Set(recorded.map(\.index) + ReceiptRetirement.ledger(directory).map(\.index))
        startIndex = max(ReceiptFiles.list(directory).last?.index ?? 0, retiredIndexes.max() ?? 0) + 1
        retainer = device == nil ? ReceiptRetainer(directory: directory, configuration: queue.configuration, fileMode: fileMode, anchor: anchor, logger: logger) : nil
        startHead = ReceiptChain.head(of: directory)
        // The files must still hold the head the store anchored; if they do not, sealed receipts
        // were removed from their end. Say so where a replay will find it, then go on.
        // An anchor in a file since retired cannot be looked for (its seals went with the file).
        if let anchor, let text = try? anchor.load(), case let anchored = ReceiptAnchor.Head(text), ReceiptChain.hex(startHead) != anchored.hash,
           !anchored.isRetired(retiredIndexes), !ReceiptChain.contains(seal: anchored.hash, in: directory) {
            let text = "at \(Timestamp.now()): the receipts in \(directory) end at seal \(ReceiptChain.hex(startHead).prefix(16))… but the store anchored seal \(anchored.hash.prefix(16))…: sealed receipts were removed from the end of the files"
            logger.error("receipts hash chain broken", metadata: ["detail": "\(text)"])
            try? anchor.recordBreak(text)
        }
    }

    public func run() async throws {
        async let finished: Void = withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread { [self] in
                loop()
                continuation.resume()
            }
            thread.name = "consentd-receipts"
            thread.start()
        }
        try? await gracefulShutdown()
        stopRequestedAt.store(DispatchTime.now().uptimeNanoseconds, ordering: .releasing)
        stopping.store(true, ordering: .releasing)
        await finished
    }

    private func loop() {
        var file = ReceiptFile(directory: directory, index: startIndex, mode: fileMode, device: device)
        retainer?.start(writing: startIndex)
        defer { retainer?.stop(promptly: shutdownGraceOver) }
        var space = FreeSpace(directory: directory, floor: queue.configuration.minimumFreeBytes)
        var head = startHead
        var headFile = startIndex
        var anchorPending = false
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        var failedGap: (count: Int, reason: ReceiptSchema.GapReason)?
        var lastSync = ContinuousClock.now
        var dirty = false
        /// Seals and appends one block of `count` receipts (after a gap line for receipts lost
        /// before it), or counts them lost.
        func writeBlock(_ lines: [UInt8], count: Int) {
            var block = lines
            var blockStart = 0
            if let gap = failedGap {
                var prefix: [UInt8] = [UInt8(ascii: "\n")] // ends a line a failed write may have cut (not sealed)
                ReceiptSchema.appendGap(UInt64(gap.count), reason: gap.reason, to: &prefix)
                block.insert(contentsOf: prefix, at: 0)
                blockStart = 1
            }
            if let shortfall = space.shortfall(for: block.count) {
                // Below the free-space floor: these receipts are not written (nothing of them
                // reaches the file), counted, and marked by a gap line once there is room again.
                failedGap = (count: (failedGap?.count ?? 0) + count, reason: .lowDiskSpace(shortfall))
                queue.recordWriteFailure(lost: count, error: "\(directory): \(shortfall)")
                return
            }
            let sealed = ReceiptChain.seal(&block, from: blockStart, previous: head)
            let writing = file.index
            let maximumSize = queue.configuration.maximumFileSize
            if file.rotates(adding: block.count, maximumSize: maximumSize) {
                retainer?.waitUntilSettled(writing) { shutdownGraceOver }
            }
            switch file.append(block, maximumSize: maximumSize) {
            case .success:
                head = sealed
                headFile = file.index
                failedGap = nil
                queue.recordWritten(count)
                dirty = true
                anchorPending = true
                if file.index != writing { retainer?.writing(file.index) }
            case let .failure(error):
                let reason = ReceiptSchema.GapReason.writeFailed(error.message)
                failedGap = (count: (failedGap?.count ?? 0) + count, reason: reason)
                queue.recordWriteFailure(lost: count, error: "\(file.path): \(error.message)")
                logger.error("cannot write receipts; they are counted as dropped", metadata: ["file": "\(file.path)", "error": "\(error.message)", "lost": "\(count)"])
                usleep(100_000)
            }
        }
        while true {
            let stop = stopping.load(ordering: .acquiring)
            if paused.load(ordering: .acquiring) && !stop {
                usleep(1000)
                continue
            }
            // At most a second behind, idle or under load: synced, then the head anchored (only
            // once the sealed block is synced to its file).
            if dirty && ContinuousClock.now - lastSync > .seconds(1) {
                file.sync()
                dirty = false
                lastSync = ContinuousClock.now
                if anchorPending, let anchor, (try? anchor.save(ReceiptAnchor.Head(hash: ReceiptChain.hex(head), file: headFile).text)) != nil { anchorPending = false }
            }
            let count = queue.take(swapping: &buffer)
            if buffer.isEmpty {
                if stop { break }
                usleep(1000)
                continue
            }
            // A block never runs past the end of its file (the retention budget counts whole
            // files of at most --receipt-file-size): what was taken is cut at line ends into
            // blocks that fit, each sealed on its own.
            let maximumSize = queue.configuration.maximumFileSize
            var offset = 0
            var remaining = count
            while offset < buffer.count {
                var room = file.room(maximumSize: maximumSize) - 512 // the seal and a gap line
                if room < ReceiptBlocks.firstLineLength(buffer, from: offset) { room = maximumSize - 512 } // it starts the next file
                let end = ReceiptBlocks.cut(buffer, from: offset, within: room)
                let receipts = end == buffer.count ? remaining : min(remaining, ReceiptBlocks.receiptLines(buffer[offset..<end]))
                remaining -= receipts
                writeBlock(Array(buffer[offset..<end]), count: receipts)
                offset = end
            }
            buffer.removeAll(keepingCapacity: true)
        }
        if let gap = failedGap {
            var line: [UInt8] = [UInt8(ascii: "\n")]
            ReceiptSchema.appendGap(UInt64(gap.count), reason: gap.reason, to: &line)
            _ = ReceiptChain.seal(&line, from: 1, previous: head)
            _ = file.append(line, maximumSize: .max)
        }
        file.sync()
        file.close()
        if anchorPending, let anchor { try? anchor.save(ReceiptAnchor.Head(hash: ReceiptChain.hex(head), file: headFile).text) }
        logger.info("receipts flushed", metadata: ["written": "\(queue.writtenCount)", "dropped": "\(queue.droppedCount)"])
    }
}

/// The numbered files of a receipts directory: `receipts-000001.jsonl`, …, closed ones
/// compressed to `receipts-000001.jsonl.gz` (`ReceiptRetainer`).
public enum ReceiptFiles {
    /// One receipts file.
    public struct File: Sendable, Equatable {
        public var index: Int
        public var path: String
        /// gzip-compressed (a closed file).
        public var compressed: Bool
        /// The file name.
        public var name: String { (path as NSString).lastPathComponent }
    }

    /// The receipts files in order. When a file is there both plain and compressed (a compression
    /// that did not finish), the plain one is the file.
    public static func list(_ directory: String) -> [File] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var files: [Int: File] = [:]
        for name in names where name.hasPrefix("receipts-") {
            let compressed = name.hasSuffix(".jsonl.gz")
            guard compressed || name.hasSuffix(".jsonl"),
                  let index = Int(name.dropFirst("receipts-".count).dropLast(compressed ? ".jsonl.gz".count : ".jsonl".count)),
                  validIndexes.contains(index) else { continue }
            if let existing = files[index], !existing.compressed { continue }
            files[index] = File(index: index, path: directory + "/" + name, compressed: compressed)
        }
        return files.values.sorted { $0.index < $1.index }
    }

    /// The lines of a receipts file, decompressed if it is compressed.
    public static func read(_ file: File) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw ReceiptWriteError(message: "cannot read \(file.path)")
        }
        guard file.compressed else { return [UInt8](data) }
        let plain: [UInt8]
        do {
            var buffer = ByteBuffer(bytes: data)
            var decompressed = try buffer.decompress(with: .gzip(), maxSize: 1 << 34)
            plain = decompressed.readBytes(length: decompressed.readableBytes) ?? []
        } catch {
            throw ReceiptWriteError(message: "cannot decompress \(file.path): \(error)")
        }
        // zlib hands back what it could of a stream cut short, without an error: the gzip
        // trailer's length (the last four bytes, little-endian, modulo 2^32) must be the length
        // decompressed.
        guard data.count >= 18 else { throw ReceiptWriteError(message: "cannot decompress \(file.path): \(data.count) bytes are too few for gzip") }
        let trailer = data.suffix(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard trailer == UInt32(truncatingIfNeeded: plain.count) else {
            throw ReceiptWriteError(message: "cannot decompress \(file.path): it is cut short (\(plain.count) bytes decompressed, the gzip trailer says \(trailer))")
        }
        return plain
    }

    /// Makes `directory` ready for receipts: created if missing; an existing one must be a
    /// directory of receipts (receipts files and the `policies` archive, nothing else) and not a
    /// shared one (sticky bit), because it and its files are then narrowed to `fileMode`, as the
    /// store is — `--receipts /tmp` must not take everyone's access to /tmp away.
    public static func prepare(_ directory: String, fileMode: UInt16) throws(ReceiptDirectoryError) {
        let directoryMode = directoryMode(for: fileMode)
        var info = stat()
        if stat(directory, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw ReceiptDirectoryError(description: "the receipts directory \(directory) is not a directory")
            }
            guard info.st_mode & S_ISVTX == 0 else {
                throw ReceiptDirectoryError(description: "the receipts directory \(directory) is a shared directory (mode \(String(info.st_mode & 0o7777, radix: 8))); give receipts a directory of their own")
            }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            // Its own files, and what a file system or an operator leaves beside them: hidden
            // names (.nfs*), lost+found, and rotated or compressed receipts files.
            let foreign = names.filter { !($0 == "policies" || $0 == "lost+found" || $0.hasPrefix(".") || $0.hasPrefix("receipts-")) }.sorted()
            guard foreign.isEmpty else {
                throw ReceiptDirectoryError(description: "the receipts directory \(directory) holds files that are not receipts (\(foreign.prefix(3).joined(separator: ", "))\(foreign.count > 3 ? ", …" : "")); give receipts a directory of their own")
            }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: Int(directoryMode)])
            } catch {
                throw ReceiptDirectoryError(description: "cannot create the receipts directory \(directory): \(error.localizedDescription)")
            }
        }
        guard access(directory, W_OK) == 0 else {
            throw ReceiptDirectoryError(description: "cannot write to the receipts directory \(directory): \(String(cString: strerror(errno)))")
        }
        // A receipts file the writer would append to must be a file of its own: a symbolic
        // link (or anything else) under that name could send receipts, and the narrowing below,
        // to a file elsewhere.
        for file in list(directory) {
            var entry = stat()
            // (One that vanished since the listing — compressed or retired by a daemon still
            // stopping — is not in the way.)
            if lstat(file.path, &entry) != 0 && errno == ENOENT { continue }
            guard lstat(file.path, &entry) == 0, entry.st_mode & S_IFMT == S_IFREG else {
                throw ReceiptDirectoryError(description: "the receipts directory \(directory) holds \((file.path as NSString).lastPathComponent), which is not a regular file (a symbolic link, directory or device); remove it or give receipts another directory")
            }
        }
        // Files and the directory left wider by someone else are narrowed, as the store is.
        narrow(directory, mode: directoryMode)
        for file in list(directory) { narrow(file.path, mode: fileMode) }
    }

    /// Removes permission bits beyond `mode` from an existing file or directory.
    static func narrow(_ path: String, mode: UInt16) {
        var info = stat()
        guard stat(path, &info) == 0 else { return }
        let current = UInt16(info.st_mode & 0o7777)
        if current & ~mode != 0 { _ = chmod(path, mode_t(current & mode)) }
    }

    /// The mode of receipt directories: the file mode plus search bits for whoever may read.
    static func directoryMode(for fileMode: UInt16) -> UInt16 {
        0o700 | (fileMode & 0o060 != 0 ? 0o010 | (fileMode & 0o040) : 0)
    }

    static func name(_ index: Int) -> String {
        let digits = String(index)
        return "receipts-" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits + ".jsonl"
    }

    /// The file indexes the writer uses (a name or a record outside them is not a receipts
    /// file's: numbering after it must not overflow).
    static let validIndexes = 1...999_999_999

    /// The retirement ledger's name (`ReceiptRetirement`); not a receipts file.
    static let ledgerName = "receipts-retired.jsonl"
}

struct ReceiptWriteError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Cutting what the writer took from the queue into blocks at line ends.
enum ReceiptBlocks {
    /// The end (after a newline) of the longest run of whole lines from `start` within `room`
    /// bytes; at least one line, however long.
    static func cut(_ bytes: [UInt8], from start: Int, within room: Int) -> Int {
        let limit = min(bytes.count, start + max(room, 0))
        var end = start
        var index = start
        while index < limit {
            if bytes[index] == 0x0A { end = index + 1 }
            index += 1
        }
        if end == start { end = start + firstLineLength(bytes, from: start) }
        return end
    }

    /// The length of the line at `start`, its newline included.
    static func firstLineLength(_ bytes: [UInt8], from start: Int) -> Int {
        var index = start
        while index < bytes.count && bytes[index] != 0x0A { index += 1 }
        return min(index + 1, bytes.count) - start
    }

    /// Receipt lines (not signals or gap lines) in `lines`.
    static func receiptLines(_ lines: ArraySlice<UInt8>) -> Int {
        lines.split(separator: 0x0A).reduce(0) { $0 + ($1.starts(with: ReceiptBlocks.receiptPrefix) ? 1 : 0) }
    }

    static let receiptPrefix = Array(#"{"id":"#.utf8)
}

/// The free space of the receipts file system against `--receipt-min-free-bytes`, looked at most
/// every 100 ms (and before every write while below the floor).
struct FreeSpace {
    let directory: String
    let floor: Int
    private var checked = ContinuousClock.now - .seconds(1)
    private var free = Int.max

    init(directory: String, floor: Int) {
        self.directory = directory
        self.floor = floor
    }

    /// Why `bytes` more would take the file system below the floor, or nil when they fit.
    mutating func shortfall(for bytes: Int) -> String? {
        guard floor > 0 else { return nil }
        let now = ContinuousClock.now
        if now - checked >= .milliseconds(100) || free - bytes < floor {
            free = ReceiptRetainer.freeBytes(directory) ?? Int.max
            checked = now
        }
        free -= bytes
        guard free < floor else { return nil }
        return "\(max(free + bytes, 0)) bytes free, below --receipt-min-free-bytes \(floor)"
    }
}

/// The file being appended to; opened lazily, rotated by size.
struct ReceiptFile {
    let directory: String
    private(set) var index: Int
    let mode: UInt16
    private var fd: Int32 = -1
    private var size = 0

    /// See `ReceiptConfiguration.writeEveryFileTo`.
    let device: String?

    init(directory: String, index: Int, mode: UInt16, device: String? = nil) {
        self.device = device
        self.directory = directory
        self.index = index
        self.mode = mode
    }

    var path: String { directory + "/" + ReceiptFiles.name(index) }

    /// Bytes that still fit in this file (all of them when it is empty or not open yet).
    func room(maximumSize: Int) -> Int {
        fd >= 0 && size > 0 ? max(0, maximumSize - size) : maximumSize
    }

    /// Whether appending `count` bytes closes this file and starts the next.
    func rotates(adding count: Int, maximumSize: Int) -> Bool {
        fd >= 0 && size > 0 && size + count > maximumSize
    }

    mutating func append(_ bytes: [UInt8], maximumSize: Int) -> Result<Void, ReceiptWriteError> {
        if rotates(adding: bytes.count, maximumSize: maximumSize) {
            sync()
            close()
            index += 1
        }
        if fd < 0 {
            // Private from the first byte (in a directory only the daemon's user may write to).
            if let device {
                fd = open(device, O_WRONLY | O_APPEND | O_CLOEXEC)
            } else {
                fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, mode_t(mode))
            }
            guard fd >= 0 else { return .failure(ReceiptWriteError(message: String(cString: strerror(errno)))) }
            if device == nil { _ = fchmod(fd, mode_t(mode)) }
            var info = stat()
            size = fstat(fd, &info) == 0 ? Int(info.st_size) : 0
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n > 0 {
                offset += n
                size += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return .failure(ReceiptWriteError(message: n < 0 ? String(cString: strerror(errno)) : "short write"))
            }
        }
        return .success(())
    }

    func sync() {
        if fd >= 0 { _ = fsync(fd) }
    }

    mutating func close() {
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
        size = 0
    }
}

/// Each policy revision's sources, kept beside the receipts so a replay can compile exactly the
/// set a receipt names: `policies/<revision>/<file>`.
public enum PolicyArchive {
    /// Saves the sources of `revision` unless already saved (write to a temporary directory, then
    /// rename). An existing entry for the revision must hold exactly these sources: anything else
    /// there (a file, an emptied directory, an edited copy) would make receipts that replay
    /// cannot reproduce, so it is an error, not "already saved".
    public static func save(_ sources: [PolicySource], revision: String, receipts directory: String, fileMode: UInt16 = 0o600) throws {
        let root = directory + "/policies"
        let target = root + "/" + revision
        // Left by a process that died while archiving, whatever revision this start archives.
        removeAbandoned(in: root)
        if FileManager.default.fileExists(atPath: target) {
            try verify(sources, in: target)
            return
        }
        let temporary = root + "/.incoming-\(revision)-\(getpid())"
        let mode = ReceiptFiles.directoryMode(for: fileMode)
        var keep = false
        defer { if !keep { try? FileManager.default.removeItem(atPath: temporary) } }
        try makeDirectory(root, mode: mode)
        try makeDirectory(temporary, mode: mode)
        for source in sources {
            let path = temporary + "/" + source.path
            var parent = temporary
            for component in source.path.split(separator: "/").dropLast() {
                parent += "/" + component
                try makeDirectory(parent, mode: mode)
            }
            try write(Array(source.text.utf8), to: path, mode: fileMode)
        }
        if rename(temporary, target) != 0 {
            let error = errno
            if FileManager.default.fileExists(atPath: target) {
                try verify(sources, in: target)
                return
            }
            throw ReceiptWriteError(message: "cannot archive policy revision \(revision) in \(root): \(String(cString: strerror(error)))")
        }
        keep = true
    }

    /// Removes temporary archive directories (`.incoming-<revision>-<pid>`) of processes that are
    /// gone (a daemon that crashed while archiving) and this process's own.
    static func removeAbandoned(in root: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where name.hasPrefix(".incoming-") {
            guard let pid = name.split(separator: "-").last.flatMap({ Int32($0) }) else { continue }
            if pid == getpid() || (kill(pid, 0) != 0 && errno == ESRCH) {
                try? FileManager.default.removeItem(atPath: root + "/" + name)
            }
        }
    }

    private static func makeDirectory(_ path: String, mode: UInt16) throws {
        if mkdir(path, mode_t(mode)) != 0 && errno != EEXIST {
            throw ReceiptWriteError(message: "cannot create \(path): \(String(cString: strerror(errno)))")
        }
    }

    private static func write(_ bytes: [UInt8], to path: String, mode: UInt16) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw ReceiptWriteError(message: "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ReceiptWriteError(message: "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            written += count
        }
        guard fsync(fd) == 0 else { throw ReceiptWriteError(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    /// Checks that an archived revision holds `sources`, byte for byte.
    private static func verify(_ sources: [PolicySource], in target: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ReceiptWriteError(message: "\(target) exists but is not an archived policy revision (not a directory); move it away")
        }
        for source in sources {
            guard let data = FileManager.default.contents(atPath: target + "/" + source.path), data.elementsEqual(source.text.utf8) else {
                throw ReceiptWriteError(message: "\(target) does not hold this revision's \(source.path) (missing or different); move it away")
            }
        }
    }

    /// The directory of an archived revision, if present.
    public static func directory(of revision: String, receipts directory: String) -> String? {
        let path = directory + "/policies/" + revision
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}

/// The receipts directory cannot be created or written (the daemon refuses to start).
public struct ReceiptDirectoryError: Error, CustomStringConvertible, Sendable {
    public let description: String
}
