import ConsentModel
import ConsentReceipts
import PolicyEngine

/// The daemon's one way to load its policies, at start-up and on every reload: read the
/// directory, compile it, and (with receipts on) keep the sources beside the receipts — receipts
/// name the revision, and replay needs its sources, so a set whose sources cannot be kept is not
/// loaded.
struct PolicyLoader: Sendable {
    /// The policy directory.
    var directory: String
    /// Where receipts keep each revision's sources (nil: receipts off).
    var receipts: String?
    var fileMode: UInt16

    struct Loaded {
        let set: PolicySet
        /// The policy files the set was compiled from (relative paths).
        let files: [String]
        /// Warnings of a set that compiled.
        let warnings: [Diagnostic]
        /// Read + compile + archive.
        let milliseconds: Double
    }

    /// Why no set was loaded: the errors, with where they are.
    struct Failure: Error {
        let diagnostics: [Diagnostic]
        /// The set compiled, but its sources could not be kept beside the receipts (a cause
        /// outside the policies — a full disk, a bad receipts directory — which may go away).
        var archive = false
    }

    func load(vocabulary: Vocabulary) -> Result<Loaded, Failure> {
        let started = ContinuousClock.now
        let files: (policies: [PolicySource], tests: [PolicySource], result: CompileResult)
        do { files = try PolicyDirectory.compile(directory, vocabulary: vocabulary) } catch {
            return .failure(Failure(diagnostics: [Diagnostic(.error, "unreadable-directory", at: SourceLocation(file: directory, line: 1, column: 1), "\(error)")]))
        }
        let result = files.result
        guard let set = result.policySet else {
            return .failure(Failure(diagnostics: result.diagnostics.filter { $0.severity == .error }))
        }
        if let receipts {
            do {
                try PolicyArchive.save(files.policies, revision: set.revision, receipts: receipts, fileMode: fileMode)
            } catch {
                return .failure(Failure(diagnostics: [Diagnostic(
                    .error, "policy-archive", at: SourceLocation(file: receipts + "/policies", line: 1, column: 1),
                    "cannot keep the sources of revision \(set.revision) beside the receipts (replay needs them): \(error)"
                )], archive: true))
            }
        }
        let elapsed = ContinuousClock.now - started
        return .success(Loaded(set: set, files: files.policies.map(\.path), warnings: result.diagnostics, milliseconds: Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15))
    }
}
