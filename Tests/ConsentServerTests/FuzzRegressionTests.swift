import ConsentServer
import ConsentTesting
import Foundation
import PolicyEngine
import Testing

/// Every seed of the fuzz corpora, the minimised corpora the fuzzers grew (Fuzz/corpus/<target>),
/// and every input a fuzzer ever crashed on (kept in Fuzz/regressions/<target>), replayed through
/// the same code the libFuzzer targets run, with the same checks (the fast and general paths must
/// agree on every frame; a write must come back whole).
@Suite struct FuzzRegressionTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func inputs(_ target: String) -> [URL] {
        ["Fuzz/seeds/", "Fuzz/regressions/", "Fuzz/corpus/"].flatMap { folder -> [URL] in
            let directory = repository.appendingPathComponent(folder + target)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
        }
    }

    @Test func frameInputsReplay() throws {
        let inputs = Self.inputs("frames")
        #expect(inputs.count >= 10)
        let scratch = "/tmp/cd-fuzz-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let exerciser = try FrameExerciser(policies: Self.repository.appendingPathComponent("Policies").path, scratch: scratch)
        defer { exerciser.close() }
        var answered = 0
        for input in inputs {
            let bytes = try [UInt8](Data(contentsOf: input))
            answered += bytes.withUnsafeBytes { exerciser.exercise($0) }
        }
        #expect(answered >= 15, "the seeds hold real requests")
    }

    @Test func writeInputsReplay() throws {
        let inputs = Self.inputs("write")
        #expect(inputs.count >= 10)
        let scratch = "/tmp/cd-fuzz-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let exerciser = try WriteExerciser(policies: Self.repository.appendingPathComponent("Policies").path, scratch: scratch)
        defer { exerciser.close() }
        for input in inputs {
            let bytes = try [UInt8](Data(contentsOf: input))
            bytes.withUnsafeBytes { exerciser.exercise($0) }
        }
    }

    @Test func policyInputsReplay() throws {
        let inputs = Self.inputs("policy")
        #expect(inputs.count >= 5)
        let taxonomy = try String(contentsOf: Self.repository.appendingPathComponent("Fuzz/taxonomy.yaml"), encoding: .utf8)
        for input in inputs {
            PolicyExerciser.exercise(String(decoding: try Data(contentsOf: input), as: UTF8.self), taxonomy: taxonomy)
        }
    }
}
