#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the socket path cannot be used.
public struct SocketPathError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Makes the socket path ready to bind: a stale socket left by a dead daemon is removed; a live
/// daemon's socket, or a file that is not a socket, is refused with a clear message.
enum SocketPath {
    static func prepare(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw SocketPathError(description: "\(path) exists and is not a socket; refusing to replace it (choose another --socket)")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketPathError(description: "cannot probe \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SocketPathError(description: "socket path \(path) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if result == 0 {
            throw SocketPathError(description: "another consentd is already listening on \(path); stop it first or choose another --socket")
        }
        let error = errno
        guard error == ECONNREFUSED || error == ENOENT else {
            throw SocketPathError(description: "cannot tell whether \(path) is in use: \(String(cString: strerror(error)))")
        }
        // Nobody listens: a dead daemon's socket. Replace it.
        unlink(path)
    }

    static func remove(_ path: String) {
        var info = stat()
        if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
    }
}
