import ConsentStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Applies other processes' writes to the consent store to the index, as a Service, and keeps
/// its staleness bound: the looks run on a thread of their own (each blocks, for as long as an
/// unreachable store takes to fail), and a watchdog on this task marks the index stale when no
/// look has confirmed it current for longer than the feed's `maximumStaleness` — decisions that
/// need consent then fail closed (`CONSENT_UNAVAILABLE`) until a look succeeds again.
struct ConsentFollower: Service {
    let feed: ConsentFeed
    /// Seconds between looks at the store.
    let interval: Double
    let logger: Logger

    func run() async throws {
        let interval = Duration.microseconds(Int64(max(interval, 0.001) * 1_000_000))
        let feed = feed, logger = logger
        let running = RunFlag()
        let errors = ErrorLog(logger: logger)
        let thread = Thread {
            feed.followBlocking(every: interval, while: { running.value }, onError: { error in errors.report(error) }, onReload: { why in
                logger.warning("reloaded the consent index", metadata: ["reason": "\(why)", "reloads": "\(feed.reloads)"])
            })
        }
        thread.name = "consentd-store-follower"
        thread.start()
        // Where the store can say that it changed (PostgreSQL's NOTIFY), a change wakes the
        // follower at once; the poll above is then the heartbeat that covers lost notifications.
        let watch = feed.store.watchChanges { feed.nudge() }
        defer { watch?.stop() }
        let freshness = feed.index.freshness
        await cancelWhenGracefulShutdown {
            var wasStale = false
            while !Task.isCancelled {
                let stale = freshness.check(bound: feed.maximumStaleness)
                if stale != wasStale {
                    let age = String(format: "%.1f", freshness.ageSeconds)
                    if stale {
                        logger.error("the consent index is stale: decisions that need consent are denied CONSENT_UNAVAILABLE until the store can be read", metadata: ["age_seconds": "\(age)"])
                    } else {
                        logger.notice("the consent index is current again: decisions resume")
                    }
                    wasStale = stale
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        // The thread stops after its current look (not waited for: a look can block for seconds).
        running.stop()
    }
}

/// A flag the follower's thread reads before each look.
private final class RunFlag: Sendable {
    private let running = Atomic<Bool>(true)
    var value: Bool { running.load(ordering: .relaxed) }
    func stop() { running.store(false, ordering: .relaxed) }
}

/// Logs follow errors without flooding: the first of a run of failures, then a changed message
/// or one every 10 s (the watchdog logs when the index is stale and when it is current again).
private final class ErrorLog: @unchecked Sendable {
    let logger: Logger
    private let lock = NSLock()
    private var last: (message: String, at: ContinuousClock.Instant, suppressed: Int)?

    init(logger: Logger) { self.logger = logger }

    func report(_ error: Error) {
        let message = "\(error)"
        let now = ContinuousClock.now
        let suppressed: Int? = lock.withLock {
            if let last, last.message == message, now - last.at < .seconds(10) {
                self.last?.suppressed += 1
                return nil
            }
            let count = last?.suppressed ?? 0
            last = (message, now, 0)
            return count
        }
        if let suppressed {
            logger.error("cannot follow the consent store; retrying", metadata: ["error": "\(message)", "repeats_since_last_report": "\(suppressed)"])
        }
    }
}
