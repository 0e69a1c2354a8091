import Foundation
import PostgresNIO

/// Where a PostgreSQL consent store is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` or
/// `postgresql:///DB?host=/socket/dir` (libpq's URI forms, the parts consentd uses: `host`,
/// `port`, `user`, `password` and `application_name` may also come as query parameters; a host
/// that starts with `/` is the directory of the server's Unix socket). The password may instead
/// come from `PGPASSWORD`; the user defaults to `PGUSER`, then the login name.
public struct PostgresAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String?
    public var socketDirectory: String?
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String

    /// Whether `location` names a PostgreSQL store (anything else is an SQLite file path).
    public static func isPostgres(_ location: String) -> Bool {
        location.hasPrefix("postgres://") || location.hasPrefix("postgresql://")
    }

    /// Parses a `postgres://` or `postgresql://` URI; the error says what is wrong with it.
    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(StoreError) {
        func fail(_ why: String) -> StoreError {
            StoreError(.unavailable, "--store \(Self.redact(text)): \(why) (expected postgres://USER@HOST:PORT/DB or postgresql:///DB?host=/socket/dir)")
        }
        guard Self.isPostgres(text), let components = URLComponents(string: text) else { throw fail("not a PostgreSQL URI") }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard let value = item.value else { throw fail("query parameter '\(item.name)' has no value") }
            switch item.name {
            case "host", "port", "user", "password", "dbname", "application_name", "sslmode": query[item.name] = value
            default: throw fail("unknown query parameter '\(item.name)'")
            }
        }
        if let mode = query["sslmode"], mode != "disable" {
            throw fail("sslmode=\(mode) is not supported; consentd connects without TLS (use a Unix socket or a private network)")
        }
        let host = (components.host.flatMap { $0.isEmpty ? nil : $0 }) ?? query["host"]
        if let host, host.hasPrefix("/") {
            self.host = nil
            socketDirectory = host
        } else {
            self.host = host
            socketDirectory = host == nil ? "/var/run/postgresql" : nil
        }
        if let text = query["port"] ?? components.port.map(String.init) {
            guard let port = Int(text), (1...65_535).contains(port) else { throw fail("port '\(text)' is not 1 to 65535") }
            self.port = port
        } else {
            port = 5432
        }
        let name = query["dbname"] ?? String(components.path.drop { $0 == "/" })
        guard !name.isEmpty else { throw fail("no database name") }
        database = name
        let login = ProcessInfo.processInfo.userName
        user = components.user.flatMap { $0.isEmpty ? nil : $0 } ?? query["user"] ?? environment["PGUSER"] ?? (login.isEmpty ? "postgres" : login)
        password = components.password ?? query["password"] ?? environment["PGPASSWORD"]
    }

    /// The address without its password, for logs and status.
    public var description: String {
        var components = URLComponents()
        components.scheme = "postgresql"
        components.path = "/" + database
        if let socketDirectory {
            components.host = ""
            components.queryItems = [URLQueryItem(name: "host", value: socketDirectory), URLQueryItem(name: "port", value: String(port)), URLQueryItem(name: "user", value: user)]
        } else {
            components.user = user
            components.host = host
            components.port = port
        }
        return components.string ?? "postgresql:///\(database)"
    }

    /// The connection configuration (no TLS; `application_name` names the connection's role).
    func configuration(applicationName: String, connectTimeout: TimeAmount) -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socketDirectory {
            configuration = .init(unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user, password: password, database: database)
        } else {
            configuration = .init(host: host ?? "localhost", port: port, username: user, password: password, database: database, tls: .disable)
        }
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        configuration.options.connectTimeout = connectTimeout
        return configuration
    }

    /// `text` with its password and every query value but the known harmless ones replaced by
    /// `***` (a misspelt `passwd=` must not be echoed either).
    static func redact(_ text: String) -> String {
        guard var components = URLComponents(string: text) else { return "(unreadable URI)" }
        if components.password != nil { components.password = "***" }
        let shown: Set<String> = ["host", "port", "user", "dbname", "application_name", "sslmode"]
        if let items = components.queryItems {
            components.queryItems = items.map { shown.contains($0.name) ? $0 : URLQueryItem(name: $0.name, value: "***") }
        }
        return components.string ?? "(unreadable URI)"
    }
}
