import ConsentModel
import ConsentReceipts
import Foundation
import Logging
import PolicyEngine
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Watches the policy directory (polling file sizes and times) and reloads on change or SIGHUP:
/// the whole set is read and compiled here, off the event loops, and swapped in only if it has no
/// errors; otherwise the last good set keeps serving and Status reports the diagnostics.
public final class PolicyReloader: Service, Sendable {
    /// What the reloader reads and where it reports: nothing else of the daemon.
    struct Settings: Sendable {
        /// How the set is loaded (the directory, the archive beside the receipts).
        var loader: PolicyLoader
        /// Seconds between looks at the directory; 0 = only on request (SIGHUP).
        var pollInterval: Double
    }

    private let settings: Settings
    private let policies: PolicyHolder
    private let vocabulary: Vocabulary
    private let counters: ServerCounters
    private let logger: Logger
    private let requested = Atomic<Bool>(false)
    /// The policy files of the serving set (a reload that drops one is logged).
    private let servingFiles: Mutex<[String]>
    /// The directory as it was when the serving set was read at start-up: the watch compares
    /// with it, so a change made before the watch's thread starts is not missed.
    private let loadedSignature: ReloadWatch.Signature

    /// - Parameter files: the policy files of the set loaded at start-up.
    /// - Parameter loadedSignature: the directory as it was when that set was read (nil: as it is now).
    init(settings: Settings, policies: PolicyHolder, vocabulary: Vocabulary, counters: ServerCounters, logger: Logger, files: [String],
         loadedSignature: ReloadWatch.Signature? = nil) {
        self.loadedSignature = loadedSignature ?? PolicyReloader.signature(of: settings.loader.directory)
        self.settings = settings
        self.policies = policies
        self.vocabulary = vocabulary
        self.counters = counters
        self.logger = logger
        self.servingFiles = Mutex(files)
    }

    /// Asks for a reload at the next check (what SIGHUP does).
    public func requestReload() { requested.store(true, ordering: .releasing) }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in signals.cancelOnGracefulShutdown() {
                    self.logger.info("SIGHUP: reloading policies")
                    self.requestReload()
                }
            }
            group.addTask {
                // The watch runs on a thread of its own: it reads the disk and compiles, and it
                // must not wait for a thread of Swift's cooperative pool (which other work may
                // hold for long) to notice a change or a SIGHUP.
                // Shutdown does not wait for the thread: a reload in progress (a long compile)
                // must not hold the daemon's exit past its bound; the thread stops at its next look.
                let end = WatchEnd()
                await withGracefulShutdownHandler {
                    await withTaskCancellationHandler {
                        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                            end.wait(done)
                            let thread = Thread {
                                self.watch(until: end.stop)
                                end.end()
                            }
                            thread.name = "consentd-policy-watch"
                            thread.start()
                        }
                    } onCancel: {
                        end.end()
                    }
                } onGracefulShutdown: {
                    end.end()
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Looks at the directory every poll interval (and for SIGHUP's request) until `stop`.
    private func watch(until stop: borrowing Atomic<Bool>) {
        let interval = settings.pollInterval
        var watch = ReloadWatch(loaded: loadedSignature)
        while !stop.load(ordering: .acquiring) {
            Thread.sleep(forTimeInterval: max(interval, 0.05))
            if stop.load(ordering: .acquiring) { break }
            let now = ContinuousClock.now
            let signature = interval > 0 ? PolicyReloader.signature(of: settings.loader.directory) : nil
            let asked = requested.exchange(false, ordering: .acquiringAndReleasing)
            guard watch.isDue(signature: signature, asked: asked, now: now) else { continue }
            let attempted = PolicyReloader.signature(of: settings.loader.directory)
            // A compile that outlives shutdown's start is abandoned, not installed.
            let failure = attempt(installing: { !stop.load(ordering: .acquiring) })
            watch.attempted(attempted, retryable: failure?.archive == true, now: now)
        }
    }

    /// Reads, compiles and (if clean and archived) installs the policy directory now.
    @discardableResult
    public func reload() -> Bool { attempt() == nil }

    private func attempt(installing shouldInstall: () -> Bool = { true }) -> PolicyLoader.Failure? {
        let now = Timestamp.now()
        switch settings.loader.load(vocabulary: vocabulary) {
        case let .success(loaded):
            guard shouldInstall() else { return nil }
            let previous = policies.set.revision
            policies.install(loaded.set, at: now, milliseconds: loaded.milliseconds)
            ServerCounters.bump(counters.reloadsOK)
            logger.info("policies reloaded", metadata: [
                "revision": "\(loaded.set.revision)", "previous": "\(previous)", "rules": "\(loaded.set.rules.count)",
                "warnings": "\(loaded.warnings.count)", "milliseconds": "\(String(format: "%.1f", loaded.milliseconds))",
            ])
            let dropped = servingFiles.withLock { files in
                defer { files = loaded.files }
                return Set(files).subtracting(loaded.files).sorted()
            }
            if !dropped.isEmpty {
                // Legal (a set with no errors replaces the running one), but a file missing for
                // one poll of a non-atomic deploy takes its rules — prohibitions too — with it.
                logger.warning("a policy reload dropped whole files; their rules no longer apply", metadata: ["files": "\(dropped.joined(separator: ", "))"])
            }
            return nil
        case let .failure(failure):
            policies.recordFailure(failure.diagnostics)
            ServerCounters.bump(counters.reloadsFailed)
            logger.error("policy reload failed; the last good set keeps serving", metadata: [
                "revision": "\(policies.set.revision)",
                "errors": "\(failure.diagnostics.count)",
                "first": "\(failure.diagnostics.first.map(\.description) ?? "-")",
                "retry": "\(failure.archive ? "yes, with backoff (the cause is outside the policies)" : "on the next change or SIGHUP")",
            ])
            return failure
        }
    }

    /// What the directory holds, as the loader would list it: each policy file's path (as
    /// bytes: NFC and NFD spellings of one name are two files), size, times and inode, or the
    /// listing's error (a change of any is a change).
    static func signature(of directory: String) -> ReloadWatch.Signature {
        do {
            var signature: ReloadWatch.Signature = [:]
            for entry in try PolicyDirectory.list(directory) {
                signature[Array(entry.relative.utf8)] = [entry.size, entry.modified, entry.changed, Int(truncatingIfNeeded: entry.inode)]
            }
            return signature
        } catch {
            return [Array("\u{1}error: \(error)".utf8): []]
        }
    }
}

/// When the poller reloads (a value; unit-tested without a directory or a clock).
///
/// A change is reloaded once the directory has looked the same for two polls in a row, so a
/// deploy that copies files one by one is not compiled half-way (a set missing its
/// prohibitions file for one poll would allow what they forbid). A reload that failed for a
/// cause outside the policies (the archive beside the receipts: a full disk) is retried with a
/// backoff from 1 s to 60 s; one that failed to compile waits for the next change or SIGHUP.
struct ReloadWatch {
    /// A listing of the policy directory: path bytes → size, times, inode.
    typealias Signature = [[UInt8]: [Int]]
    /// The directory as of the last reload (or start-up).
    private(set) var loaded: Signature
    /// A changed signature seen once, waiting for a second look.
    private(set) var candidate: Signature?
    private(set) var retryAt: ContinuousClock.Instant?
    private(set) var backoff: Duration = .seconds(1)

    init(loaded: Signature) { self.loaded = loaded }

    /// Whether to reload now, given this poll's signature (nil: not polling), a SIGHUP, the time.
    mutating func isDue(signature: Signature?, asked: Bool, now: ContinuousClock.Instant) -> Bool {
        var due = asked
        if let signature {
            if signature == loaded {
                candidate = nil
            } else if signature == candidate {
                due = true
            } else {
                candidate = signature
            }
        }
        if let retryAt, now >= retryAt { due = true }
        return due
    }

    /// A reload of the directory as `signature` was attempted.
    mutating func attempted(_ signature: Signature, retryable: Bool, now: ContinuousClock.Instant) {
        loaded = signature
        candidate = nil
        if retryable {
            retryAt = now + backoff
            backoff = min(backoff * 2, .seconds(60))
        } else {
            retryAt = nil
            backoff = .seconds(1)
        }
    }
}

/// The end of the policy watch, for the task waiting on it: the watch thread finishing, or
/// shutdown (which sets `stop` and stops waiting at once). Resumes the waiter exactly once,
/// whichever comes first, even when it comes before the waiter.
private final class WatchEnd: Sendable {
    let stop = Atomic<Bool>(false)
    private let state = Mutex<(ended: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func wait(_ waiter: CheckedContinuation<Void, Never>) {
        let endedAlready = state.withLock { state in
            if !state.ended { state.waiter = waiter }
            return state.ended
        }
        if endedAlready { waiter.resume() }
    }

    func end() {
        stop.store(true, ordering: .releasing)
        let waiter = state.withLock { state in
            state.ended = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
