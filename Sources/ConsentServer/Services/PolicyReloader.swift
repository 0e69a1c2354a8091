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
    let state: ServerState
    private let requested = Atomic<Bool>(false)
    private let lastSignature: Mutex<[String: [Int]]>

    init(state: ServerState) {
        self.state = state
        self.lastSignature = Mutex(PolicyReloader.signature(of: state.configuration.policies))
    }

    /// Asks for a reload at the next check (what SIGHUP does).
    public func requestReload() { requested.store(true, ordering: .releasing) }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in signals.cancelOnGracefulShutdown() {
                    self.state.logger.info("SIGHUP: reloading policies")
                    self.requestReload()
                }
            }
            group.addTask {
                let interval = self.state.configuration.policyPollInterval
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    try? await Task.sleep(for: .milliseconds(Int(max(interval, 0.05) * 1000)))
                    var changed = false
                    if interval > 0 {
                        let signature = PolicyReloader.signature(of: self.state.configuration.policies)
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

    /// Reads, compiles and (if clean) installs the policy directory now.
    @discardableResult
    public func reload() -> Bool {
        let directory = state.configuration.policies
        let now = Timestamp.now()
        let started = ContinuousClock.now
        let diagnostics: [Diagnostic]
        do {
            let files = try PolicyDirectory.read(directory)
            let result = PolicyCompiler.compile(files.policies, vocabulary: state.vocabulary)
            if let set = result.policySet, let archiveProblem = archive(files.policies, revision: set.revision) {
                // Receipts name the revision, and replay needs its sources: a set whose sources
                // cannot be kept is not installed (as the daemon refuses to start without them).
                diagnostics = [archiveProblem]
            } else if let set = result.policySet {
                let previous = state.policies.set.revision
                let elapsed = ContinuousClock.now - started
                let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
                state.policies.install(set, at: now, milliseconds: milliseconds)
                ServerCounters.bump(state.counters.reloadsOK)
                state.logger.info("policies reloaded", metadata: [
                    "revision": "\(set.revision)", "previous": "\(previous)", "rules": "\(set.rules.count)",
                    "warnings": "\(result.diagnostics.count)", "milliseconds": "\(String(format: "%.1f", milliseconds))",
                ])
                return true
            } else {
                diagnostics = result.diagnostics.filter { $0.severity == .error }
            }
        } catch {
            diagnostics = [Diagnostic(.error, "unreadable-directory", at: SourceLocation(file: directory, line: 1, column: 1), "\(error)")]
        }
        state.policies.recordFailure(diagnostics)
        ServerCounters.bump(state.counters.reloadsFailed)
        state.logger.error("policy reload failed; the last good set keeps serving", metadata: [
            "revision": "\(state.policies.set.revision)",
            "errors": "\(diagnostics.count)",
            "first": "\(diagnostics.first.map(\.description) ?? "-")",
        ])
        return false
    }

    /// Keeps the sources of `revision` beside the receipts (when receipts are on); the problem, if
    /// they cannot be kept.
    private func archive(_ sources: [PolicySource], revision: String) -> Diagnostic? {
        guard let receipts = state.configuration.receipts.directory else { return nil }
        do {
            try PolicyArchive.save(sources, revision: revision, receipts: receipts, fileMode: state.configuration.fileMode)
            return nil
        } catch {
            return Diagnostic(.error, "policy-archive", at: SourceLocation(file: receipts + "/policies", line: 1, column: 1),
                              "cannot keep the sources of revision \(revision) beside the receipts (replay needs them): \(error)")
        }
    }

    /// Path → [size, modification time in ns] of every YAML file under the directory.
    static func signature(of directory: String) -> [String: [Int]] {
        guard let enumerator = FileManager.default.enumerator(at: URL(fileURLWithPath: directory), includingPropertiesForKeys: [.fileSizeKey, .contentModificationDateKey]) else { return [:] }
        var signature: [String: [Int]] = [:]
        for case let url as URL in enumerator where url.pathExtension == "yaml" || url.pathExtension == "yml" {
            let values = try? url.resourceValues(forKeys: [.fileSizeKey, .contentModificationDateKey])
            signature[url.path] = [values?.fileSize ?? -1, Int((values?.contentModificationDate?.timeIntervalSince1970 ?? 0) * 1e9)]
        }
        return signature
    }
}
