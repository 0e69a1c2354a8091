import ConsentModel
import GRDB
import GRDBSQLite

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An argument bound by `Database.exactQuery`/`exactExecute`.
enum ExactArgument {
    case text(String)
    case int(Int64)
    case null
}

extension Database {
    /// Runs `sql` with every text argument bound with its byte length, and calls `row` for each
    /// result row (read columns with `columnText`, never `String(cString:)`).
    ///
    /// GRDB binds Swift strings NUL-terminated (length -1), so `"victim\0x"` would be bound as
    /// `"victim"`; identifiers from outside go through here instead. The statement is cached.
    func exactQuery(_ sql: String, _ arguments: [ExactArgument], row: (OpaquePointer) throws -> Void) throws {
        let statement = try cachedStatement(sql: sql)
        let handle = statement.sqliteStatement
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        defer {
            sqlite3_reset(handle)
            sqlite3_clear_bindings(handle)
        }
        for (offset, argument) in arguments.enumerated() {
            let index = Int32(offset + 1)
            switch argument {
            case let .text(text): bindText(handle, index, text)
            case let .int(value): sqlite3_bind_int64(handle, index, value)
            case .null: sqlite3_bind_null(handle, index)
            }
        }
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return }
            guard code == SQLITE_ROW else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))), sql: sql)
            }
            try row(handle)
        }
    }

    /// Runs a statement that returns no rows, binding text arguments with their lengths.
    func exactExecute(_ sql: String, _ arguments: [ExactArgument]) throws {
        try exactQuery(sql, arguments) { _ in }
    }
}

/// The text of column `index` of the current row, read with its byte length (a NUL inside is
/// kept, not a terminator); nil for SQL NULL.
func columnText(_ row: OpaquePointer, _ index: Int32) -> String? {
    guard sqlite3_column_type(row, index) != SQLITE_NULL, let text = sqlite3_column_text(row, index) else { return nil }
    let count = Int(sqlite3_column_bytes(row, index))
    return String(decoding: UnsafeRawBufferPointer(start: text, count: count), as: UTF8.self)
}

/// The store's files are private to the daemon's user unless configured otherwise.
enum StoreFiles {
    /// Creates `path` with `mode` if it does not exist (so SQLite, which gives the WAL and SHM
    /// files the database file's mode, never creates anything wider), or narrows an existing
    /// file whose mode grants more than `mode`.
    static func secure(_ path: String, mode: UInt16) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode))
        if fd >= 0 {
            // umask may have removed bits the operator asked for (a group mode): set them exactly.
            _ = fchmod(fd, mode_t(mode))
            close(fd)
            return
        }
        guard errno == EEXIST else {
            throw StoreError(.unavailable, "cannot create consent store \(path): \(String(cString: strerror(errno)))")
        }
        try narrow(path, mode: mode)
    }

    /// Removes permission bits beyond `mode` from an existing file (nothing when it is absent).
    static func narrow(_ path: String, mode: UInt16) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { return }
        let current = UInt16(info.st_mode & 0o7777)
        guard current & ~mode != 0 else { return }
        guard chmod(path, mode_t(current & mode)) == 0 else {
            throw StoreError(.unavailable, "cannot narrow the mode of \(path) to \(String(mode, radix: 8)): \(String(cString: strerror(errno)))")
        }
    }
}
