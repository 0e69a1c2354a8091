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
    private let lastSignature: Mutex<[String: [Int]]>

    init(settings: Settings, policies: PolicyHolder, vocabulary: Vocabulary, counters: ServerCounters, logger: Logger) {
        self.settings = settings
        self.policies = policies
        self.vocabulary = vocabulary
        self.counters = counters
        self.logger = logger
        self.lastSignature = Mutex(PolicyReloader.signature(of: settings.loader.directory))
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
                let interval = self.settings.pollInterval
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    try? await Task.sleep(for: .milliseconds(Int(max(interval, 0.05) * 1000)))
                    var changed = false
                    if interval > 0 {
                        let signature = PolicyReloader.signature(of: self.settings.loader.directory)
                        changed = self.lastSignature.withLock { last in
                            defer { last = signature }
                            return last != signature
                        }
                    }
                    if self.requested.exchange(false, ordering: .acquiringAndReleasing) || changed {
                        self.reload()
                    }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Reads, compiles and (if clean and archived) installs the policy directory now.
    @discardableResult
    public func reload() -> Bool {
        let now = Timestamp.now()
        switch settings.loader.load(vocabulary: vocabulary) {
        case let .success(loaded):
            let previous = policies.set.revision
            policies.install(loaded.set, at: now, milliseconds: loaded.milliseconds)
            ServerCounters.bump(counters.reloadsOK)
            logger.info("policies reloaded", metadata: [
                "revision": "\(loaded.set.revision)", "previous": "\(previous)", "rules": "\(loaded.set.rules.count)",
                "warnings": "\(loaded.warnings.count)", "milliseconds": "\(String(format: "%.1f", loaded.milliseconds))",
            ])
            return true
        case let .failure(failure):
            policies.recordFailure(failure.diagnostics)
            ServerCounters.bump(counters.reloadsFailed)
            logger.error("policy reload failed; the last good set keeps serving", metadata: [
                "revision": "\(policies.set.revision)",
                "errors": "\(failure.diagnostics.count)",
                "first": "\(failure.diagnostics.first.map(\.description) ?? "-")",
            ])
            return false
        }
    }

    /// Path → [size, modification time in ns] of every YAML file under the directory.
    static func signature(of directory: String) -> [String: [Int]] {
        guard let enumerator = FileManager.default.enumerator(at: URL(fileURLWithPath: directory), includingPropertiesForKeys: [.fileSizeKey, .contentModificationDateKey]) else { return [:] }
        var signature: [String: [Int]] = [:]
        for case let url as URL in enumerator where PolicyDirectory.isPolicyFile(url) {
            let values = try? url.resourceValues(forKeys: [.fileSizeKey, .contentModificationDateKey])
            signature[url.path] = [values?.fileSize ?? -1, Int((values?.contentModificationDate?.timeIntervalSince1970 ?? 0) * 1e9)]
        }
        return signature
    }
}
