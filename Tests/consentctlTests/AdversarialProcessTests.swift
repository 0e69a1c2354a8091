import ConsentClient
import ConsentModel
import ConsentStore
import ConsentWire
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The review's classes against the real `consentd` binary: roles seen from other uids, the
/// daemon's memory while clients flood it, and the modes of the files it creates.
@Suite(.serialized) struct AdversarialProcessTests {
    static let measurement = "marketing.advertising.measurement"

    static func residentKilobytes(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    static func connect(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        precondition(result == 0, "connect failed")
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }

    /// Sends as much of `bytes` as the daemon takes, until it stops taking them for a while.
    static func flood(_ fd: Int32, _ bytes: [UInt8]) -> Int {
        var sent = 0
        var stalls = 0
        while sent < bytes.count && stalls < 100 {
            let count = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count > 0 { sent += count; stalls = 0 } else { stalls += 1; usleep(10_000) }
        }
        return sent
    }

    /// Runs blocking socket work on a thread of its own, never on the few threads of Swift's
    /// cooperative pool that other tests' async work (the store follower's polling) needs.
    static func onAThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let thread = Thread {
                // Low priority (inherited by the daemons it starts): these floods must not starve
                // suites that measure how promptly something happens.
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
                continuation.resume(with: Result { try body() })
            }
            thread.start()
        }
    }

    @Test func floodingClientsDoNotGrowTheDaemon() async throws {
        try await Self.onAThread { try Self.flood() }
    }

    static func flood() throws {
        let daemon = try DaemonProcess()
        defer { _ = daemon.terminate() }
        _ = try ConsentClient(socketPath: daemon.socket).status()
        let before = Self.residentKilobytes(daemon.process.processIdentifier)
        // 8 connections, each 1 MiB of 3-byte Status frames, never reading an answer (the
        // review's input grew the daemon by ~37 MB per connection).
        var statusFlood: [UInt8] = []
        for _ in 0..<(1 << 20) / 3 { statusFlood += [0x02, 0x42, 0x00] }
        // And 8 more, each a CheckBatch of ~500 000 empty items (~1 MiB) followed by more of them.
        var batchBody: [UInt8] = [0x08, 0x01, 0x1A]
        let items = [UInt8](repeating: 0, count: 1_000_000).enumerated().map { $0.offset % 2 == 0 ? UInt8(0x0A) : 0 }
        FrameCodec.appendVarint(UInt64(items.count), to: &batchBody)
        batchBody += items
        let batchFrame = FrameCodec.frame(batchBody)
        var connections: [Int32] = []
        for _ in 0..<8 {
            let fd = Self.connect(daemon.socket)
            connections.append(fd)
            _ = Self.flood(fd, statusFlood)
        }
        for _ in 0..<8 {
            let fd = Self.connect(daemon.socket)
            connections.append(fd)
            _ = Self.flood(fd, batchFrame + batchFrame + batchFrame)
        }
        usleep(300_000)
        let during = Self.residentKilobytes(daemon.process.processIdentifier)
        // Another client is answered meanwhile.
        #expect(try ConsentClient(socketPath: daemon.socket).status().version.isEmpty == false)
        let grownMiB = Double(during - before) / 1024
        // Bound: 16 connections × (256 KiB of answers + 256 KiB read cycle + 64 KiB watermark +
        // one frame being cut out of the input) ≈ 30 MiB, plus allocator slack.
        #expect(grownMiB < 64, "the daemon grew by \(grownMiB) MiB while 16 connections flooded it")
        for fd in connections { close(fd) }
    }

    @Test func aCheckerExplainOverTheSocketShowsNoHistory() async throws {
        try await Self.onAThread { try Self.checkerExplain() }
    }

    static func checkerExplain() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return }
        let daemon = try DaemonProcess(arguments: ["--socket-mode", "666"])
        defer { _ = daemon.terminate() }
        chmod(daemon.directory.url.path, 0o755)
        var output = try daemon.ctl(["consent", "grant", "carol", Self.measurement, "--socket", "consentd.sock"])
        #expect(output.status == 0, "\(output.stderr)")
        output = try daemon.ctl(["consent", "deny", "carol", "marketing.email", "--socket", "consentd.sock"])
        #expect(output.status == 0, "\(output.stderr)")
        let question = ["check", "carol", Self.measurement, "user.behavior", "--jurisdiction", "DE", "--explain", "--socket", daemon.socket]
        let asAdmin = try daemon.ctl(question)
        #expect(asAdmin.status == 0, "\(asAdmin.stderr)")
        #expect(asAdmin.stdout.contains("marketing.email"), "an admin sees the subject's other records")
        let asNobody = try CLI.run(["--reuid=65534", "--regid=65534", "--clear-groups", CLI.binary.path] + question, in: daemon.directory.url, executable: "/usr/bin/setpriv")
        #expect(asNobody.status == 0, "\(asNobody.stderr)")
        #expect(asNobody.stdout.hasPrefix("allow CONSENT_GRANTED"), "\(asNobody.stdout)")
        #expect(!asNobody.stdout.contains("marketing.email"), "a checker must not see other records: \(asNobody.stdout)")
        #expect(asNobody.stdout.contains("withheld"))
        // JSON too.
        let json = try CLI.run(["--reuid=65534", "--regid=65534", "--clear-groups", CLI.binary.path] + question + ["--format", "json"], in: daemon.directory.url, executable: "/usr/bin/setpriv")
        #expect(!json.stdout.contains("marketing.email"))
    }

    @Test func theRealBinaryCreatesPrivateFiles() async throws {
        try await Self.onAThread { try Self.privateFiles() }
    }

    static func privateFiles() throws {
        let previous = umask(0o022)
        defer { umask(previous) }
        for (arguments, fileMode, directoryMode) in [([String](), 0o600, 0o700), (["--file-mode", "640"], 0o640, 0o750)] as [([String], Int, Int)] {
            let daemon = try DaemonProcess(arguments: ["--receipts", "receipts"] + arguments)
            _ = try daemon.ctl(["consent", "grant", "alice", Self.measurement, "--socket", "consentd.sock"])
            _ = try daemon.ctl(["check", "alice", Self.measurement, "user.behavior", "--jurisdiction", "DE", "--socket", "consentd.sock"])
            func mode(_ name: String) -> Int? {
                var info = stat()
                guard lstat(daemon.directory.path(name), &info) == 0 else { return nil }
                return Int(info.st_mode & 0o777)
            }
            #expect(mode("consentd.sock") == 0o660)
            #expect(mode("consentd.sqlite") == fileMode)
            for name in ["consentd.sqlite-wal", "consentd.sqlite-shm"] where mode(name) != nil {
                #expect(mode(name) == fileMode, "\(name)")
            }
            #expect(mode("receipts") == directoryMode)
            #expect(daemon.terminate() == 0)
            #expect(mode("receipts/receipts-000001.jsonl") == fileMode)
            // A wider store file left by someone else is narrowed at the next start.
            chmod(daemon.directory.path("consentd.sqlite"), 0o666)
            let again = try DaemonProcess(arguments: ["--store", daemon.directory.path("consentd.sqlite")] + arguments)
            #expect(mode("consentd.sqlite") == fileMode & 0o666)
            #expect(again.terminate() == 0)
        }
    }
}
