import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// The channel writers NOTIFY after each commit and daemons LISTEN on. A notification is only a
/// wake-up (its payload, the new head, is not trusted): the follower reads the changes itself.
let feedChannel = "consentd_feed"

/// Sends `NOTIFY consentd_feed, 'HEAD'` after commits, on a connection of its own and never
/// inside a write (a notifying commit takes a cluster-wide lock): writes hand it the new head and
/// return; at most one notification is in flight, and heads that arrive meanwhile are coalesced
/// into the next. A lost notification costs a follower one heartbeat, nothing more.
final class FeedNotifier: @unchecked Sendable {
    private let link: PostgresLink
    private let queue = DispatchQueue(label: "consentd.store.notify")
    private let lock = NSLock()
    /// Guarded by `lock`.
    private var pending: UInt64 = 0
    private var draining = false

    init(link: PostgresLink) { self.link = link }

    /// A write committed with `head` as the store's last sequence.
    func committed(head: UInt64) {
        let start: Bool = lock.withLock {
            pending = max(pending, head)
            if draining { return false }
            draining = true
            return true
        }
        if start { queue.async { self.drain() } }
    }

    /// Waits until every head handed over so far has been sent (a short-lived process, such as
    /// `consentctl consent … --store URI`, would otherwise exit before its NOTIFY left).
    func flush() { queue.sync {} }

    private func drain() {
        while true {
            let head: UInt64? = lock.withLock {
                guard pending > 0 else {
                    draining = false
                    return nil
                }
                defer { pending = 0 }
                return pending
            }
            guard let head else { return }
            _ = try? link.run { try $0.query("SELECT pg_notify(\(feedChannel), \(String(head)))") }
        }
    }
}

/// Something that wakes a follower when the store may have changed; `stop` ends it.
public protocol ChangeWatch: Sendable {
    func stop()
}

/// One connection per daemon that LISTENs on `consentd_feed` and calls `wake` on every
/// notification — and when the connection is lost, since notifications sent meanwhile are lost
/// too. It reconnects with a jittered backoff (50 ms doubling to 5 s), and checks the
/// connection every few seconds with a bounded `SELECT 1`, so a connection that hangs is closed
/// and replaced instead of silently delivering nothing.
final class PostgresListener: ChangeWatch, @unchecked Sendable {
    private let address: PostgresAddress
    private let wake: @Sendable () -> Void
    private let logger: Logger
    private let timeout: TimeAmount
    private let lock = NSLock()
    /// Guarded by `lock`.
    private var running = true
    private var connection: PostgresConnection?

    init(address: PostgresAddress, timeout: TimeAmount, logger: Logger, wake: @escaping @Sendable () -> Void) {
        self.address = address
        self.timeout = timeout
        self.logger = logger
        self.wake = wake
        let thread = Thread { [self] in run() }
        thread.name = "consentd-store-listen"
        thread.start()
    }

    func stop() {
        let connection: PostgresConnection? = lock.withLock {
            running = false
            return self.connection
        }
        if let connection { let _: EventLoopFuture<Void> = connection.close() }
    }

    private var isRunning: Bool { lock.withLock { running } }

    private func run() {
        var failures = 0
        while isRunning {
            do {
                try listenOnce()
                failures = 0
            } catch {
                failures += 1
                if failures == 1 || failures % 20 == 0 {
                    logger.warning("cannot listen for consent store changes; the heartbeat poll still runs; retrying", metadata: ["error": "\(error)"])
                }
            }
            wake()  // whatever was sent while the connection was down is caught up now
            guard isRunning else { return }
            let ceiling = min(0.05 * Double(1 << min(failures, 7)), 5.0)
            usleep(useconds_t(Double.random(in: ceiling / 2...ceiling) * 1_000_000))
        }
    }

    /// Connects, listens, and returns when the connection ends.
    private func listenOnce() throws {
        let configuration = address.configuration(applicationName: "consentd-listen", connectTimeout: timeout)
        let connection = try PostgresLink.connect(PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 0, logger: logger),
                                                  within: timeout, address: address)
        let keep: Bool = lock.withLock {
            if running { self.connection = connection }
            return running
        }
        guard keep else {
            let _: EventLoopFuture<Void> = connection.close()
            return
        }
        defer {
            lock.withLock { self.connection = nil }
            let _: EventLoopFuture<Void> = connection.close()
        }
        let wake = self.wake
        connection.addListener(channel: feedChannel) { _, _ in wake() }
        let session = PostgresLink.Session(connection: connection, timeout: timeout, logger: logger, address: address)
        try session.query("LISTEN \(unescaped: feedChannel)")
        wake()  // changes committed before LISTEN took effect are read now
        // The watchdog: a bounded round trip every 5 s; a failure or a closed connection ends it.
        let closed = DispatchSemaphore(value: 0)
        connection.closeFuture.whenComplete { _ in closed.signal() }
        while isRunning, !connection.isClosed {
            if closed.wait(timeout: .now() + 5) == .success { break }
            guard isRunning, !connection.isClosed else { break }
            try session.query("SELECT 1")
        }
        if !isRunning { return }
        throw StoreError(.unavailable, "the listening connection to \(address) closed")
    }
}
