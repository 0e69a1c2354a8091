import ConsentTesting
import Foundation

/// Set up in LLVMFuzzerInitialize (see Fuzz/frames). Policies: $CONSENTD_FUZZ_POLICIES or ./Policies.
nonisolated(unsafe) let exerciser: WriteExerciser = {
    let policies = ProcessInfo.processInfo.environment["CONSENTD_FUZZ_POLICIES"] ?? "Policies"
    var template = Array((NSTemporaryDirectory() + "consentd-fuzz-write.XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { fatalError("fuzz-write: cannot create a scratch directory") }
    do {
        return try WriteExerciser(policies: policies, scratch: String(cString: made))
    } catch {
        fatalError("fuzz-write: cannot start (run from the repository root, or set CONSENTD_FUZZ_POLICIES): \(error)")
    }
}()
