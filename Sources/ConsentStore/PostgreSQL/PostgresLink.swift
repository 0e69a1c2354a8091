import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// One PostgreSQL connection used by one caller at a time, opened when first needed and again
/// after it failed; every statement waits at most `timeout` (postgres-nio has no query timeout:
/// the connection is closed when the time is up, which fails the statement).
///
/// Calls block the calling thread on an `EventLoopFuture` (never call them on an event loop).
final class PostgresLink: @unchecked Sendable {
    let address: PostgresAddress
    let applicationName: String
    let timeout: TimeAmount
    private let group: any EventLoopGroup
    private let logger: Logger
    private let lock = NSLock()
    /// Guarded by `lock`.
    private var connection: PostgresConnection?
    private var nextID = 0

    init(address: PostgresAddress, applicationName: String, timeout: TimeAmount, group: any EventLoopGroup, logger: Logger) {
        self.address = address
        self.applicationName = applicationName
        self.timeout = timeout
        self.group = group
        self.logger = logger
    }

    /// The longest this side waits for one statement: the server's own `statement_timeout`
    /// (`timeout`) ends a slow statement first; this later bound is for a server that stopped
    /// answering at all.
    static func statementBound(_ timeout: TimeAmount) -> TimeAmount { timeout + .seconds(2) }

    /// How long a wait before a statement (for the connection, for connecting) may take: at most
    /// `timeout`, and under a `StoreDeadline` only what leaves a statement its whole bound; nil
    /// when not even that is left.
    static func waitBound(_ timeout: TimeAmount) -> TimeAmount? {
        guard let remaining = StoreDeadline.remaining else { return timeout }
        let spare = TimeAmount.nanoseconds(Int64(remaining.components.seconds) * 1_000_000_000 + remaining.components.attoseconds / 1_000_000_000) - statementBound(timeout)
        return spare > .zero ? min(timeout, spare) : nil
    }

    /// The refusal when a deadline leaves too little time to begin a step.
    static func outOfTime(_ step: String, timeout: TimeAmount, address: PostgresAddress) -> StoreError {
        StoreError(.unavailable, "the consent store \(address) could not be used in time: \(step), and the request's deadline left less than the \(statementBound(timeout).nanoseconds / 1_000_000) ms a statement may take; nothing was sent")
    }

    /// Runs `body` with the connection held; a failure that leaves the connection unusable (or
    /// in an unknown transaction state) closes it, and the next call opens a new one.
    func run<T>(_ body: (Session) throws -> T) throws -> T {
        // Waiting for the connection counts against the same bound as a statement: calls queued
        // behind a stuck one fail after `timeout` instead of one bound each, in turn.
        guard let lockBound = Self.waitBound(timeout) else { throw Self.outOfTime("before waiting for the connection", timeout: timeout, address: address) }
        guard lock.lock(before: Date().addingTimeInterval(Double(lockBound.nanoseconds) / 1e9)) else {
            if lockBound < timeout { throw Self.outOfTime("the connection was not free within \(lockBound.nanoseconds / 1_000_000) ms", timeout: timeout, address: address) }
            throw StoreError(.unavailable, "the consent store \(address) is busy: the connection was not free within \(timeout.nanoseconds / 1_000_000) ms; nothing was sent")
        }
        defer { lock.unlock() }
        let connection = try open()
        let session = Session(connection: connection, timeout: timeout, logger: logger, address: address)
        do {
            return try body(session)
        } catch {
            // Whatever the statement was, the connection may hold an open transaction or be
            // half-way through a reply: start the next call afresh.
            Self.close(connection)
            self.connection = nil
            throw error
        }
    }

    /// Closes the connection (the next call opens a new one).
    func close() {
        lock.lock()
        defer { lock.unlock() }
        if let connection { Self.close(connection) }
        connection = nil
    }

    deinit {
        if let connection { Self.close(connection) }
    }

    /// Closes `connection`, waiting for it unless called on an event loop (where waiting would
    /// deadlock; the close then completes after this returns).
    static func close(_ connection: PostgresConnection) {
        let closing: EventLoopFuture<Void> = connection.close()
        if MultiThreadedEventLoopGroup.currentEventLoop == nil { _ = result(of: closing, within: .seconds(2)) }
    }

    private func open() throws -> PostgresConnection {
        if let connection, !connection.isClosed { return connection }
        connection = nil
        nextID += 1
        guard let bound = Self.waitBound(timeout) else { throw Self.outOfTime("a new connection was needed", timeout: timeout, address: address) }
        let configuration = address.configuration(applicationName: applicationName, connectTimeout: bound)
        let started = NIODeadline.now()
        do {
            let opened = try Self.connect(PostgresConnection.connect(on: group.next(), configuration: configuration, id: nextID, logger: logger), within: bound, address: address)
            // The server gives up on a statement itself within the bound (and rolls it back), so a
            // statement this side stopped waiting for cannot commit later behind the caller's back.
            // Setting it is part of connecting: within the same bound.
            let left = max(bound - (NIODeadline.now() - started), .milliseconds(1))
            let timer = opened.eventLoop.scheduleTask(in: left) { let _: EventLoopFuture<Void> = opened.close() }
            defer { timer.cancel() }
            do {
                let set = opened.query(PostgresQuery(unsafeSQL: "SET statement_timeout = \(timeout.nanoseconds / 1_000_000)"), logger: logger)
                guard let result = Self.result(of: set, within: left + .seconds(1)) else {
                    throw StoreError(.unavailable, "cannot connect to the consent store \(address): the server did not finish the connection's set-up within \(bound.nanoseconds / 1_000_000) ms")
                }
                _ = try result.get()
            } catch {
                Self.close(opened)
                if NIODeadline.now() - started >= bound {
                    throw StoreError(.unavailable, "cannot connect to the consent store \(address): the server did not finish the connection's set-up within \(bound.nanoseconds / 1_000_000) ms")
                }
                throw error
            }
            connection = opened
            return opened
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.unavailable, "cannot connect to the consent store \(address): \(Self.describe(error))")
        }
    }

    /// Waits for a connection at most `timeout` in all: `connectTimeout` bounds only the socket's
    /// connect, not PostgreSQL's start-up exchange after it, which a server in crash recovery
    /// under load can leave unanswered. A connection that arrives after the deadline is closed.
    static func connect(_ future: EventLoopFuture<PostgresConnection>, within timeout: TimeAmount, address: PostgresAddress) throws -> PostgresConnection {
        guard let result = result(of: future, within: timeout, late: { close($0) }) else {
            throw StoreError(.unavailable, "cannot connect to the consent store \(address): the server did not finish the connection's start-up within \(timeout.nanoseconds / 1_000_000) ms")
        }
        return try result.get()
    }

    /// The future's result, or nil when it has none within `timeout` — a calling thread never
    /// waits on a future without a bound (a reply that never comes, or a close that never
    /// completes, must not hold a write or the follower for ever). A result that comes later
    /// goes to `late`.
    static func result<T>(of future: EventLoopFuture<T>, within timeout: TimeAmount, late: @escaping @Sendable (T) -> Void = { _ in }) -> Result<T, any Error>? {
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome<T>()
        future.whenComplete { result in
            let isLate = outcome.lock.withLock { () -> Bool in
                if outcome.abandoned { return true }
                outcome.value = result
                return false
            }
            if isLate, case let .success(value) = result { late(value) }
            done.signal()
        }
        if done.wait(timeout: .now() + .nanoseconds(Int(max(timeout.nanoseconds, 0)))) == .timedOut {
            let abandoned = outcome.lock.withLock { () -> Bool in
                if outcome.value != nil { return false }
                outcome.abandoned = true
                return true
            }
            if abandoned { return nil }
        }
        return outcome.lock.withLock { outcome.value }
    }

    /// A future's result, or that the caller stopped waiting for it.
    private final class Outcome<T>: @unchecked Sendable {
        let lock = NSLock()
        var value: Result<T, any Error>?
        var abandoned = false
    }

    /// What went wrong, in the server's words where it gave some.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                let code = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                let detail = error.serverInfo?[.detail].map { ": \($0)" } ?? ""
                return message + detail + code
            }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }

    /// The connection while `run` holds it.
    struct Session {
        let connection: PostgresConnection
        let timeout: TimeAmount
        let logger: Logger
        let address: PostgresAddress

        /// Runs one statement and returns its rows. Under a `StoreDeadline`, a statement is sent
        /// only with its whole bound still ahead.
        @discardableResult
        func query(_ query: PostgresQuery) throws -> PostgresQueryResult {
            if PostgresLink.waitBound(timeout) == nil { throw PostgresLink.outOfTime("the statement's turn came late", timeout: timeout, address: address) }
            let started = NIODeadline.now()
            let connection = self.connection
            let bound = PostgresLink.statementBound(timeout)
            let timer = connection.eventLoop.scheduleTask(in: bound) { let _: EventLoopFuture<Void> = connection.close() }
            defer { timer.cancel() }
            do {
                // Closing the connection at `bound` fails the statement; should even that not
                // come, the thread stops waiting a second later.
                guard let result = PostgresLink.result(of: connection.query(query, logger: logger), within: bound + .seconds(1)) else {
                    PostgresLink.close(connection)
                    throw StoreError(.unavailable, "the consent store \(address) did not answer within \(bound.nanoseconds / 1_000_000) ms and the connection did not close; "
                                     + "whether a write sent on it committed is unknown: retry it with the same idempotency key")
                }
                return try result.get()
            } catch let error as StoreError {
                throw error
            } catch {
                if NIODeadline.now() - started >= bound {
                    throw StoreError(.unavailable, "the consent store \(address) did not answer within \(bound.nanoseconds / 1_000_000) ms; the connection was closed, "
                                     + "and whether a write sent on it committed is unknown: retry it with the same idempotency key")
                }
                if let error = error as? PSQLError, error.serverInfo?[.sqlState] == "57014" {
                    throw StoreError(.unavailable, "the consent store \(address) did not finish within \(timeout.nanoseconds / 1_000_000) ms (the server cancelled the statement; nothing was written)")
                }
                if let error = error as? PSQLError, error.serverInfo?[.sqlState] == "CD003" {
                    throw StoreError(.staleKeyIDs, "consent store \(address): \(PostgresLink.describe(error)); nothing was written")
                }
                if let error = error as? PSQLError, error.serverInfo?[.sqlState] == "CD001" {
                    throw StoreError(.storeChanged, "consent store \(address): \(PostgresLink.describe(error)); nothing was written")
                }
                if connection.isClosed {
                    throw StoreError(.unavailable, "lost the connection to the consent store \(address): \(PostgresLink.describe(error))")
                }
                throw StoreError(.database, "consent store \(address): \(PostgresLink.describe(error))")
            }
        }
    }
}

/// Splits SQL text into statements at top-level semicolons (not inside quotes, dollar-quoted
/// bodies or comments): postgres-nio sends each query as one extended-protocol statement.
enum SQLStatements {
    static func split(_ text: String) -> [String] {
        var statements: [String] = []
        var current: [UInt8] = []
        let bytes = Array(text.utf8)
        var index = 0
        var inQuote = false, inDollar = false
        while index < bytes.count {
            let byte = bytes[index]
            if !inQuote, byte == UInt8(ascii: "$"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "$") {
                inDollar.toggle()
                current += [byte, byte]
                index += 2
                continue
            }
            if !inDollar, !inQuote, byte == UInt8(ascii: "-"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "-") {
                while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
                continue
            }
            if !inDollar, byte == UInt8(ascii: "'") { inQuote.toggle() }
            if !inDollar, !inQuote, byte == UInt8(ascii: ";") {
                let statement = String(decoding: current, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if !statement.isEmpty { statements.append(statement) }
                current = []
            } else {
                current.append(byte)
            }
            index += 1
        }
        let statement = String(decoding: current, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if !statement.isEmpty { statements.append(statement) }
        return statements
    }
}
