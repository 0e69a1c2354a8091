import ConsentWire
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Misbehaving peers for `bench --idle-connections/--slow-clients`: connections that send
/// nothing, and clients that send a valid Check one byte per second (reconnecting whenever the
/// daemon cuts them off), held open while a well-behaved load is measured.
final class AbuseLoad: @unchecked Sendable {
    private var idle: [Int32] = []
    private let stopping = Atomic<Bool>(false)
    private var threads: [Thread] = []
    let reconnects = Atomic<Int>(0)

    init(socket: String, idleConnections: Int, slowClients: Int, frame: [UInt8]) throws {
        for _ in 0..<idleConnections {
            guard let fd = AbuseLoad.connect(socket) else {
                throw BenchError("could open only \(idle.count) of \(idleConnections) idle connections to \(socket) (raise `ulimit -n` or the daemon's --max-connections)")
            }
            idle.append(fd)
        }
        for _ in 0..<slowClients {
            let thread = Thread { [self] in
                var fd = AbuseLoad.connect(socket) ?? -1
                var index = 0
                while !stopping.load(ordering: .relaxed) {
                    if fd < 0 {
                        fd = AbuseLoad.connect(socket) ?? -1
                        reconnects.add(1, ordering: .relaxed)
                    }
                    if fd >= 0 {
                        var byte = frame[index % frame.count]
                        if send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) != 1 {
                            close(fd)
                            fd = -1
                        }
                        index += 1
                    }
                    for _ in 0..<10 where !stopping.load(ordering: .relaxed) { usleep(100_000) }
                }
                if fd >= 0 { close(fd) }
            }
            threads.append(thread)
            thread.start()
        }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        for fd in idle { close(fd) }
        idle.removeAll()
        while threads.contains(where: { !$0.isFinished }) { usleep(10_000) }
    }

    static func connect(_ path: String) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            close(fd)
            return nil
        }
        return fd
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
