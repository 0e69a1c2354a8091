import ConsentModel
import Foundation

#if canImport(Glibc)
import Glibc
#endif

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

    /// One policy file found below a policy directory.
    public struct Entry: Sendable, Equatable {
        /// Path relative to the directory (what diagnostics name).
        public var relative: String
        /// Where to read it (through a symbolic link, if it is one).
        public var path: String
        /// Size, modification and change times (nanoseconds) and inode of the file read, for
        /// change detection (a same-size edit that restores the modification time still
        /// changes the change time).
        public var size: Int
        public var modified: Int
        public var changed: Int
        public var inode: UInt64
    }

    /// Every policy file below `directory`, sorted by relative path: regular `*.yaml`/`*.yml`
    /// files, and symbolic links to regular files (a ConfigMap mount, a shared prohibitions
    /// file). Hidden names (`.x`, `..data`) are skipped, files and directories alike. Nothing
    /// that could be a policy file is skipped silently: a policy name that is a FIFO, a device,
    /// a dangling link or a link to a directory, a link to a directory among the
    /// subdirectories, and a name that is not UTF-8 where a policy could be are errors naming
    /// the entry. The reader and the daemon's change watcher both list through here.
    public static func list(_ directory: String) throws -> [Entry] {
        let root = URL(fileURLWithPath: directory).standardizedFileURL.path
        var info = stat()
        guard stat(root, &info) == 0 else { throw ReadError(path: directory, reason: errno == ENOENT ? "no such directory" : String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw ReadError(path: directory, reason: "not a directory") }
        var entries: [Entry] = []
        try walk(root, relative: "", depth: 0, into: &entries)
        return entries.sorted { Array($0.relative.utf8).lexicographicallyPrecedes(Array($1.relative.utf8)) }
    }

    /// The names in `directory`, as bytes (a name need not be UTF-8).
    private static func names(_ directory: String, shown: String) throws -> [[UInt8]] {
        guard let stream = opendir(directory) else {
            throw ReadError(path: shown, reason: "cannot list it (\(String(cString: strerror(errno))))")
        }
        defer { closedir(stream) }
        var names: [[UInt8]] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name != Array(".".utf8) && name != Array("..".utf8) { names.append(name) }
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// Whether a file name (bytes) is a policy file's: `*.yaml` or `*.yml`, not hidden.
    static func isPolicyName<Name: Collection<UInt8>>(_ name: Name) -> Bool {
        (name.suffix(5).elementsEqual(".yaml".utf8) || name.suffix(4).elementsEqual(".yml".utf8)) && name.first != UInt8(ascii: ".")
    }

    /// `x.YAML`, `x.Yml`, …: a policy file by intent that the exact rule would skip.
    static func isPolicyNameInAnotherCase<Name: Collection<UInt8>>(_ name: Name) -> Bool {
        let lowered = name.map { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) ? $0 | 0x20 : $0 }
        return isPolicyName(lowered)
    }

    private static func walk(_ directory: String, relative: String, depth: Int, into entries: inout [Entry]) throws {
        guard depth < 32 else { throw ReadError(path: relative, reason: "more than 32 levels of subdirectories") }
        for raw in try names(directory, shown: relative.isEmpty ? directory : relative) where raw.first != UInt8(ascii: ".") {
            var link = stat()
            let pathBytes = Array(directory.utf8) + [UInt8(ascii: "/")] + raw + [0]
            let found = pathBytes.withUnsafeBufferPointer { lstat(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), &link) } == 0
            guard let name = String(validating: raw, as: UTF8.self) else {
                // Not UTF-8: harmless unless a policy could be there.
                let escaped = raw.map { $0 < 0x80 && $0 >= 0x20 ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
                let shown = relative.isEmpty ? escaped : relative + "/" + escaped
                if isPolicyName(raw) || (found && link.st_mode & S_IFMT == S_IFDIR) {
                    throw ReadError(path: shown, reason: "the name is not valid UTF-8 (rename it)")
                }
                continue
            }
            let path = directory + "/" + name
            let shown = relative.isEmpty ? name : relative + "/" + name
            let isPolicyName = isPolicyName(raw)
            if !isPolicyName, isPolicyNameInAnotherCase(raw) {
                throw ReadError(path: shown, reason: "policy files end in .yaml or .yml, in lower case; rename it to be read, or move it out of the policy directory")
            }
            guard found else { throw ReadError(path: shown, reason: String(cString: strerror(errno))) }
            switch link.st_mode & S_IFMT {
            case S_IFDIR:
                try walk(path, relative: shown, depth: depth + 1, into: &entries)
            case S_IFREG:
                if isPolicyName { entries.append(entry(shown, path, link)) }
            case S_IFLNK:
                var target = stat()
                guard stat(path, &target) == 0 else {
                    if isPolicyName { throw ReadError(path: shown, reason: "a symbolic link to nothing (\(String(cString: strerror(errno))))") }
                    continue
                }
                switch target.st_mode & S_IFMT {
                case S_IFREG:
                    if isPolicyName { entries.append(entry(shown, path, target)) }
                case S_IFDIR:
                    throw ReadError(path: shown, reason: "a symbolic link to a directory, which is not read (link the files, or give the linked directory itself)")
                default:
                    if isPolicyName { throw ReadError(path: shown, reason: "a symbolic link to something that is not a regular file") }
                }
            default:
                if isPolicyName { throw ReadError(path: shown, reason: "not a regular file") }
            }
        }
    }

    private static func entry(_ relative: String, _ path: String, _ info: stat) -> Entry {
        Entry(
            relative: relative, path: path, size: Int(info.st_size),
            modified: Int(info.st_mtim.tv_sec) &* 1_000_000_000 &+ Int(info.st_mtim.tv_nsec),
            changed: Int(info.st_ctim.tv_sec) &* 1_000_000_000 &+ Int(info.st_ctim.tv_nsec),
            inode: UInt64(info.st_ino)
        )
    }

    /// The set's files and its test suites, each sorted by relative path. A file that is not
    /// UTF-8 is refused (not repaired: a repaired rule id or key would be a different one).
    public static func read(_ directory: String) throws -> (policies: [PolicySource], tests: [PolicySource]) {
        var policies: [PolicySource] = []
        var tests: [PolicySource] = []
        for entry in try list(directory) {
            guard let data = FileManager.default.contents(atPath: entry.path) else {
                throw ReadError(path: entry.relative, reason: "cannot read it (\(access(entry.path, R_OK) == 0 ? "read failed" : String(cString: strerror(errno))))")
            }
            guard let text = String(validating: data, as: UTF8.self) else {
                throw ReadError(path: entry.relative, reason: "not valid UTF-8 (byte \(invalidUTF8Offset(data)))")
            }
            let source = PolicySource(path: entry.relative, text: text)
            if source.isTestSuite { tests.append(source) } else { policies.append(source) }
        }
        return (policies, tests)
    }

    /// The offset of the first byte that is not part of valid UTF-8.
    static func invalidUTF8Offset(_ data: Data) -> Int {
        var iterator = data.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case let .valid(scalar): offset += scalar.count
            case .error: return offset
            case .emptyInput: return offset
            }
        }
    }

    /// Whether a file below a policy directory is one of its files: `*.yaml` or `*.yml`, not
    /// hidden. The reader and the daemon's change watcher both ask this.
    public static func isPolicyFile(_ url: URL) -> Bool { isPolicyName(url.lastPathComponent.utf8) }

    /// Reads the directory and compiles its policy files (its test suites are returned, not
    /// compiled): the one read → compile that the daemon, consentctl, receipt replay and the
    /// benchmarks share.
    public static func compile(_ directory: String, vocabulary: Vocabulary) throws -> (policies: [PolicySource], tests: [PolicySource], result: CompileResult) {
        let files = try read(directory)
        return (files.policies, files.tests, PolicyCompiler.compile(files.policies, vocabulary: vocabulary))
    }
}
