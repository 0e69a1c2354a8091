#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the socket path cannot be used.
public struct SocketPathError: Error, CustomStringConvertible, Sendable {
    public let description: String

    package init(description: String) { self.description = description }
}

/// Makes the socket path ready to bind: a stale socket left by a dead daemon is removed; a live
/// daemon's socket, or a file that is not a socket, is refused with a clear message.
package enum SocketPath {
    package static func prepare(_ path: String) throws {
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

    /// What identifies the socket file this daemon created: device and inode.
    package struct Identity: Sendable, Equatable {
        var device: UInt64
        var inode: UInt64
    }

    /// Where to bind so that the socket never exists at `path` with a wider mode than asked for:
    /// a fresh directory beside `path` that only this user can enter. After `chmod`, `publish`
    /// links the socket into place (failing, rather than replacing, if something appeared there).
    package struct Staging {
        package let directory: String
        package let temporaryPath: String
        package let finalPath: String

        /// Links the bound socket to its final path and removes the staging directory; returns the
        /// identity of the published socket.
        package func publish() throws -> Identity {
            defer { discard() }
            guard link(temporaryPath, finalPath) == 0 else {
                let error = errno
                if error == EEXIST {
                    throw SocketPathError(description: "\(finalPath) appeared while this daemon was starting (another consentd?); refusing to replace it")
                }
                throw SocketPathError(description: "cannot create the socket \(finalPath): \(String(cString: strerror(error)))")
            }
            guard let identity = SocketPath.identity(of: finalPath) else {
                throw SocketPathError(description: "cannot stat the socket \(finalPath): \(String(cString: strerror(errno)))")
            }
            return identity
        }

        /// Removes the staging directory and anything bound in it.
        package func discard() {
            unlink(temporaryPath)
            rmdir(directory)
        }
    }

    /// A private staging directory next to `path` (mode 0700); nil when the staged path would be
    /// longer than a socket path may be.
    package static func staging(for path: String) throws -> Staging? {
        let slash = path.lastIndex(of: "/")
        let parent = slash.map { String(path[..<$0]) } ?? "."
        let base = (parent.isEmpty ? "" : parent) + "/.consentd-sock.XXXXXX"
        guard base.utf8.count + 2 < 108 else { return nil }
        var template = Array(base.utf8CString)
        guard let made = mkdtemp(&template) else {
            throw SocketPathError(description: "cannot create a private directory beside \(path) to bind in: \(String(cString: strerror(errno)))")
        }
        let directory = String(cString: made)
        return Staging(directory: directory, temporaryPath: directory + "/s", finalPath: path)
    }

    package static func identity(of path: String) -> Identity? {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Removes the socket at `path` only if it is the one this daemon created (same device and
    /// inode): a successor that bound the path after this daemon stopped listening keeps its socket.
    package static func remove(_ path: String, ifStill identity: Identity) {
        if SocketPath.identity(of: path) == identity { unlink(path) }
    }
}
