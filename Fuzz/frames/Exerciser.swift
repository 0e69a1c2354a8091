import ConsentTesting
import Foundation

/// Set up in LLVMFuzzerInitialize (a global outside main.swift is initialized lazily; libFuzzer's main
/// never runs main.swift's top-level code). Policies: $CONSENTD_FUZZ_POLICIES or ./Policies.
nonisolated(unsafe) let exerciser: FrameExerciser = {
    let policies = ProcessInfo.processInfo.environment["CONSENTD_FUZZ_POLICIES"] ?? "Policies"
    let scratch = NSTemporaryDirectory() + "consentd-fuzz-\(ProcessInfo.processInfo.processIdentifier)"
    try? FileManager.default.removeItem(atPath: scratch)
    do {
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        return try FrameExerciser(policies: policies, scratch: scratch)
    } catch {
        fatalError("fuzz-frames: cannot start (run from the repository root, or set CONSENTD_FUZZ_POLICIES): \(error)")
    }
}()
