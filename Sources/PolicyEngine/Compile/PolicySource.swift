import ConsentModel
import Foundation

/// The text of one policy-directory file and the path diagnostics name it by.
public struct PolicySource: Hashable, Sendable {
    /// Path relative to the policy directory (or as given).
    public var path: String
    /// The file's contents.
    public var text: String

    /// Creates a source.
    public init(path: String, text: String) {
        self.path = path
        self.text = text
    }

    /// Whether the file is a policy test suite (`*_test.yaml` / `*_test.yml`).
    public var isTestSuite: Bool { PolicySource.isTestSuite(path) }

    static func isTestSuite(_ path: String) -> Bool { path.hasSuffix("_test.yaml") || path.hasSuffix("_test.yml") }
}

/// Reads a policy directory: every `*.yaml` / `*.yml` file below it, recursively, in path order.
public enum PolicyDirectory {
    /// A directory that cannot be read.
    public struct ReadError: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "cannot read policy directory \(path): \(reason)" }
    }

    /// The set's files and its test suites, each sorted by relative path.
    public static func read(_ directory: String) throws -> (policies: [PolicySource], tests: [PolicySource]) {
        let root = URL(fileURLWithPath: directory).standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory) else {
            throw ReadError(path: directory, reason: "no such directory")
        }
        guard isDirectory.boolValue else { throw ReadError(path: directory, reason: "not a directory") }
        guard let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw ReadError(path: directory, reason: "cannot list it")
        }
        var policies: [PolicySource] = []
        var tests: [PolicySource] = []
        let prefix = root.path.hasSuffix("/") ? root.path : root.path + "/"
        for case let url as URL in enumerator {
            guard isPolicyFile(url), (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            let full = url.standardizedFileURL.path
            let relative = full.hasPrefix(prefix) ? String(full.dropFirst(prefix.count)) : full
            let data: Data
            do { data = try Data(contentsOf: url) } catch {
                throw ReadError(path: relative, reason: error.localizedDescription)
            }
            let text = String(decoding: data, as: UTF8.self)
            let source = PolicySource(path: relative, text: text)
            if source.isTestSuite { tests.append(source) } else { policies.append(source) }
        }
        policies.sort { $0.path < $1.path }
        tests.sort { $0.path < $1.path }
        return (policies, tests)
    }

    /// Whether a file below a policy directory is one of its files: `*.yaml` or `*.yml`, not
    /// hidden. The reader and the daemon's change watcher both ask this.
    public static func isPolicyFile(_ url: URL) -> Bool {
        let name = url.lastPathComponent
        return (name.hasSuffix(".yaml") || name.hasSuffix(".yml")) && !name.hasPrefix(".")
    }

    /// Reads the directory and compiles its policy files (its test suites are returned, not
    /// compiled): the one read → compile that the daemon, consentctl, receipt replay and the
    /// benchmarks share.
    public static func compile(_ directory: String, vocabulary: Vocabulary) throws -> (policies: [PolicySource], tests: [PolicySource], result: CompileResult) {
        let files = try read(directory)
        return (files.policies, files.tests, PolicyCompiler.compile(files.policies, vocabulary: vocabulary))
    }
}
