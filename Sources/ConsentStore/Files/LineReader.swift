#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a file line by line with `getline`, handing out each line's bytes without copying.
final class LineReader {
    private let file: UnsafeMutablePointer<FILE>
    private var buffer: UnsafeMutablePointer<CChar>?
    private var capacity = 0
    /// 1-based number of the line last returned.
    private(set) var lineNumber = 0
    /// Bytes consumed so far (for progress).
    private(set) var bytesRead = 0

    init(path: String) throws {
        guard let file = fopen(path, "rb") else {
            throw StoreError(.file, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        self.file = file
    }

    deinit {
        free(buffer)
        fclose(file)
    }

    /// Calls `body` with the next line (without its newline), or returns false at the end.
    func next<T>(_ body: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        let count = getline(&buffer, &capacity, file)
        guard count >= 0 else {
            if ferror(file) != 0 { throw StoreError(.file, "read error: \(String(cString: strerror(errno)))") }
            return nil
        }
        lineNumber += 1
        bytesRead += count
        var length = count
        while length > 0, buffer![length - 1] == 10 || buffer![length - 1] == 13 { length -= 1 }
        return try body(UnsafeRawBufferPointer(start: buffer, count: length))
    }

    /// Total size of the file, if it can be known.
    static func size(of path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }
}

/// Writes text to a file through stdio's buffer; `close()` flushes and syncs.
final class TextWriter {
    private let file: UnsafeMutablePointer<FILE>
    let path: String

    init(path: String) throws {
        guard let file = fopen(path, "wb") else {
            throw StoreError(.file, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        self.file = file
        self.path = path
    }

    func write(line: String) throws {
        var line = line
        let ok = line.withUTF8 { buffer in
            (buffer.count == 0 || fwrite(buffer.baseAddress, 1, buffer.count, file) == buffer.count) && fputc(10, file) != EOF
        }
        guard ok else { throw StoreError(.file, "cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    func close() throws {
        defer { fclose(file) }
        guard fflush(file) == 0, fsync(fileno(file)) == 0 else {
            throw StoreError(.file, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
