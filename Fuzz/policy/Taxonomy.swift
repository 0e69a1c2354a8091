import Foundation

/// The shipped taxonomy, read on first use (outside main.swift, so initialized lazily): rule
/// files under test compile against it. $CONSENTD_FUZZ_POLICIES or ./Policies.
nonisolated(unsafe) let taxonomy: String? = {
    let policies = ProcessInfo.processInfo.environment["CONSENTD_FUZZ_POLICIES"] ?? "Policies"
    return try? String(contentsOfFile: policies + "/taxonomy.yaml", encoding: .utf8)
}()
