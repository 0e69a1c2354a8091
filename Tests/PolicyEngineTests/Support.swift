import ConsentModel
import ConsentWorkload
import Foundation
import PolicyEngine
import Testing

/// Paths and helpers shared by the engine's tests.
enum Fixtures {
    /// The fixture folder in the source tree (golden files are re-recorded there).
    static let sourceRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    /// The repository's shipped `Policies/`.
    static let shippedPolicies = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Policies")

    /// Set `CONSENTD_RECORD_GOLDEN=1` to rewrite golden files from the current output.
    static var recording: Bool { ProcessInfo.processInfo.environment["CONSENTD_RECORD_GOLDEN"] == "1" }

    static func compile(_ directory: URL, vocabulary: Vocabulary = Vocabulary()) throws -> (CompileResult, tests: [PolicySource]) {
        let files = try PolicyDirectory.read(directory.path)
        return (PolicyCompiler.compile(files.policies, vocabulary: vocabulary), files.tests)
    }

    static func compile(_ sources: [String: String], vocabulary: Vocabulary = Vocabulary()) -> CompileResult {
        PolicyCompiler.compile(sources.map { PolicySource(path: $0.key, text: $0.value) }, vocabulary: vocabulary)
    }
}

/// A small, fast, seeded generator so that property tests are reproducible (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
