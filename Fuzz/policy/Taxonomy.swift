import Foundation

/// The taxonomy fuzzed rule files compile against, read on first use (outside main.swift, so
/// initialized lazily): $CONSENTD_FUZZ_TAXONOMY or ./Fuzz/taxonomy.yaml, a small one — the
/// compile of the taxonomy is repeated for every input.
nonisolated(unsafe) let taxonomy: String? = {
    let path = ProcessInfo.processInfo.environment["CONSENTD_FUZZ_TAXONOMY"] ?? "Fuzz/taxonomy.yaml"
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        fatalError("fuzz-policy: cannot read the taxonomy \(path) (run from the repository root, or set CONSENTD_FUZZ_TAXONOMY)")
    }
    return text
}()
