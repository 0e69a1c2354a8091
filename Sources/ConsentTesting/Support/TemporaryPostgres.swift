import ConsentStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// A database of its own on the PostgreSQL server named by `CONSENTD_TEST_POSTGRES` (a
/// `postgres://` or `postgresql:///DB?host=/socket/dir` URI of a database the tests may create
/// databases from), dropped when released. Tests that need PostgreSQL skip when the variable is
/// unset (`TemporaryPostgres.skipReason`).
public final class TemporaryPostgres: @unchecked Sendable {
    /// The environment variable naming the server.
    public static let variable = "CONSENTD_TEST_POSTGRES"

    /// The server's URI, or nil when the variable is unset or empty.
    public static var serverURI: String? {
        guard let text = ProcessInfo.processInfo.environment[variable], !text.isEmpty else { return nil }
        return text
    }

    /// Why PostgreSQL tests do not run here, or nil when they do.
    public static var skipReason: String? {
        serverURI == nil ? "PostgreSQL tests skipped: set \(variable) to a server's URI (e.g. postgresql:///postgres?host=/tmp/pg&port=5432&user=consentd; see README) to run them" : nil
    }

    /// The new database's URI (`--store` takes it).
    public let uri: String
    /// The new database's address.
    public let address: PostgresAddress
    /// The new database's name.
    public let name: String
    private let server: PostgresAddress

    /// Creates an empty database on the server (`serverURI`: another server than the default's).
    public init(serverURI: String? = TemporaryPostgres.serverURI) throws {
        guard let serverURI else { throw StoreError(.unavailable, Self.skipReason ?? "") }
        server = try PostgresAddress(serverURI)
        name = "consentd_t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        var address = server
        address.database = name
        self.address = address
        uri = address.description
        try RawPostgres(server).execute("CREATE DATABASE \(name)")
    }

    /// A raw connection to the new database.
    public func connect(applicationName: String = "consentd-test") throws -> RawPostgres {
        try RawPostgres(address, applicationName: applicationName)
    }

    /// A raw connection to the server's own database (for pg_terminate_backend and the like).
    public func connectToServer() throws -> RawPostgres { try RawPostgres(server) }

    deinit {
        if let admin = try? RawPostgres(server) { _ = try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
    }
}

/// One plain connection for tests: statements as text, rows back, blocking.
public final class RawPostgres: @unchecked Sendable {
    public let connection: PostgresConnection
    private let logger = Logger(label: "consentd.test.postgres")

    public init(_ address: PostgresAddress, applicationName: String = "consentd-test") throws {
        var configuration: PostgresConnection.Configuration
        if let directory = address.socketDirectory {
            configuration = .init(unixSocketPath: "\(directory)/.s.PGSQL.\(address.port)", username: address.user, password: address.password, database: address.database)
        } else {
            configuration = .init(host: address.host ?? "localhost", port: address.port, username: address.user, password: address.password, database: address.database, tls: .disable)
        }
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        connection = try PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 1, logger: logger).wait()
    }

    /// Runs one statement; its rows.
    @discardableResult
    public func execute(_ sql: String) throws -> [PostgresRow] {
        do {
            return Array(try connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).wait())
        } catch {
            throw StoreError(.database, "\(String(reflecting: error)) in: \(sql.prefix(120).replacingOccurrences(of: "\n", with: " "))")
        }
    }

    /// The first column of every row, which the statement must give as `text` (cast it).
    public func column(_ sql: String) throws -> [String] {
        try execute(sql).map { row in
            var cells = row.makeIterator()
            guard let cell = cells.next() else { return "" }
            guard cell.dataType == .text else { throw StoreError(.database, "column(): cast the first column to text in: \(sql)") }
            return try cell.decode(String?.self) ?? ""
        }
    }

    deinit { _ = try? connection.close().wait() }
}

/// A PostgreSQL server the fault tests may stop, start and restart: `CONSENTD_TEST_POSTGRES_FAULTS`
/// (its URI) and `CONSENTD_TEST_POSTGRES_CTL` (the `pg_ctl -D DIR -l LOG` command that controls
/// it, run through `/bin/sh -c`, e.g. `runuser -u postgres -- pg_ctl -D /tmp/pg/data -l /tmp/pg/log`;
/// the server's settings must be in its postgresql.conf). `.ci/run` starts one beside the main
/// cluster; never point it at a server other work uses.
public enum FaultPostgres {
    public static var serverURI: String? { value("CONSENTD_TEST_POSTGRES_FAULTS") }
    public static var control: String? { value("CONSENTD_TEST_POSTGRES_CTL") }
    public static var skipReason: String? {
        serverURI == nil || control == nil
            ? "PostgreSQL fault tests skipped: set CONSENTD_TEST_POSTGRES_FAULTS and CONSENTD_TEST_POSTGRES_CTL to a server they may restart (see README)" : nil
    }

    /// Runs `pg_ctl ARGUMENTS` on the fault server; throws when it fails.
    public static func ctl(_ arguments: String) throws {
        guard let control else { throw StoreError(.unavailable, skipReason ?? "") }
        // system(3), not Foundation's Process: `pg_ctl start` leaves a server running that
        // inherits the child's descriptors, and Process.waitUntilExit then waits for it too.
        let status = system("\(control) \(arguments) </dev/null >/dev/null 2>&1")
        guard status == 0 else { throw StoreError(.unavailable, "pg_ctl \(arguments) failed (status \(status))") }
    }

    /// Sends `signal` to the fault server's postmaster and every process it started: SIGSTOP
    /// freezes the server whole (connections accepted by the kernel, never answered; statements
    /// under way never finish), SIGCONT lets it go on. The data directory is the `-D` of
    /// CONSENTD_TEST_POSTGRES_CTL.
    public static func signal(_ signal: Int32) throws {
        let words = (control ?? "").split(separator: " ").map(String.init)
        guard let flag = words.firstIndex(of: "-D"), flag + 1 < words.count,
              let pidFile = try? String(contentsOfFile: words[flag + 1] + "/postmaster.pid", encoding: .utf8),
              let postmaster = pidFile.split(separator: "\n").first.flatMap({ Int32($0.trimmingCharacters(in: .whitespaces)) }) else {
            throw StoreError(.unavailable, "cannot find the fault server's postmaster (no -D DIR with a postmaster.pid in CONSENTD_TEST_POSTGRES_CTL)")
        }
        var targets: [Int32] = [postmaster]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // After "pid (comm) state ppid …".
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == postmaster { targets.append(pid) }
        }
        for pid in targets { _ = kill(pid, signal) }
    }

    private static func value(_ name: String) -> String? {
        guard let text = ProcessInfo.processInfo.environment[name], !text.isEmpty else { return nil }
        return text
    }
}
