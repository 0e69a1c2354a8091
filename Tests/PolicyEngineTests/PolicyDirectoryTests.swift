import Foundation
import PolicyEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a policy directory holds is read whole, or refused naming what could not be read:
/// nothing that could be a policy file is skipped silently (a skipped prohibitions file once
/// let the daemon allow what it forbids).
@Suite struct PolicyDirectoryTests {
    final class Directory {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("pd-\(UUID().uuidString.prefix(8))")
        init() throws { try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(at: root) }

        func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

        func write(_ relative: String, _ text: String = "x: 1\n") throws {
            try FileManager.default.createDirectory(atPath: (path(relative) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path(relative), atomically: false, encoding: .utf8)
        }

        func link(_ relative: String, to destination: String) throws {
            try FileManager.default.createSymbolicLink(atPath: path(relative), withDestinationPath: destination)
        }
    }

    func refusal(_ directory: String) -> String? {
        do {
            _ = try PolicyDirectory.read(directory)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func aSymbolicLinkToAPolicyFileIsRead() throws {
        let directory = try Directory()
        try directory.write("shared/prohibitions.yaml", "kind: x\n")
        try directory.write("set/eea.yaml")
        try directory.link("set/prohibitions.yaml", to: directory.path("shared/prohibitions.yaml"))
        let files = try PolicyDirectory.read(directory.path("set"))
        #expect(files.policies.map(\.path) == ["eea.yaml", "prohibitions.yaml"])
        #expect(files.policies.last?.text == "kind: x\n")
    }

    @Test func aPolicyDirectoryGivenThroughASymbolicLinkIsRead() throws {
        let directory = try Directory()
        try directory.write("v1/eea.yaml")
        try directory.write("v1/us/us.yaml")
        try directory.link("current", to: directory.path("v1"))
        #expect(try PolicyDirectory.read(directory.path("current")).policies.map(\.path) == ["eea.yaml", "us/us.yaml"])
        #expect(try PolicyDirectory.read(directory.path("current") + "/").policies.count == 2)
    }

    /// A Kubernetes ConfigMap volume: the files are links through a hidden `..data` link to a
    /// hidden timestamped directory; each file is read once, through its visible name.
    @Test func aConfigMapVolumeIsReadOnceThroughItsVisibleNames() throws {
        let directory = try Directory()
        try directory.write("cm/..2026_12_03_10_00_00.1/eea.yaml")
        try directory.write("cm/..2026_12_03_10_00_00.1/eea_test.yaml")
        try directory.link("cm/..data", to: "..2026_12_03_10_00_00.1")
        try directory.link("cm/eea.yaml", to: "..data/eea.yaml")
        try directory.link("cm/eea_test.yaml", to: "..data/eea_test.yaml")
        let files = try PolicyDirectory.read(directory.path("cm"))
        #expect(files.policies.map(\.path) == ["eea.yaml"])
        #expect(files.tests.map(\.path) == ["eea_test.yaml"])
    }

    @Test func whatCannotBeReadAsAPolicyFileIsRefusedByName() throws {
        let cases: [(String, (Directory) throws -> Void, String)] = [
            ("a dangling link", { try $0.link("p/gone.yaml", to: "nowhere.yaml") }, "gone.yaml: a symbolic link to nothing"),
            ("a FIFO", { _ = mkfifo($0.path("p/pipe.yaml"), 0o600) }, "pipe.yaml: not a regular file"),
            ("a link to a directory", { try $0.write("elsewhere/x.yaml"); try $0.link("p/more", to: $0.path("elsewhere")) }, "more: a symbolic link to a directory"),
            ("a directory named like a file, holding none", { try FileManager.default.createDirectory(atPath: $0.path("p/odd.yaml"), withIntermediateDirectories: true) }, nil),
            ("invalid UTF-8", { try Data([0x78, 0x3A, 0x20, 0xC3, 0x28, 0x0A]).write(to: URL(fileURLWithPath: $0.path("p/bad.yaml"))) }, "bad.yaml: not valid UTF-8 (byte 3)"),
            // Review 21 F7: a policy file by intent in another case is not dropped silently.
            ("an upper-case extension", { try $0.write("p/prohibitions.YAML") }, "prohibitions.YAML: policy files end in .yaml or .yml, in lower case"),
            ("a mixed-case extension", { try $0.write("p/us/x.Yml") }, "us/x.Yml: policy files end in .yaml or .yml, in lower case"),
            ("a hidden upper-case file", { try $0.write("p/.old.YAML") }, nil),
        ].map { ($0.0, $0.1, $0.2 ?? "") }
        for (name, make, expected) in cases {
            let directory = try Directory()
            try directory.write("p/eea.yaml")
            try make(directory)
            let refused = refusal(directory.path("p"))
            if expected.isEmpty {
                #expect(refused == nil, "\(name): \(refused ?? "")")
            } else {
                #expect(refused?.contains(expected) == true, "\(name): \(refused ?? "read without error")")
            }
        }
    }

    @Test func hiddenFilesAndDirectoriesAreNotPolicies() throws {
        let directory = try Directory()
        try directory.write("p/eea.yaml")
        try directory.write("p/.eea.yaml.swp")
        try directory.write("p/.git/config.yaml")
        try directory.write("p/notes.txt")
        #expect(try PolicyDirectory.read(directory.path("p")).policies.map(\.path) == ["eea.yaml"])
    }

    /// The listing the reloader watches is the listing the loader reads.
    @Test func theListingNamesTheFilesRead() throws {
        let directory = try Directory()
        try directory.write("v1/eea.yaml", "a: 1\n")
        try directory.write("v1/x_test.yaml", "b: 22\n")
        try directory.link("v1/link.yaml", to: directory.path("v1/eea.yaml"))
        let listed = try PolicyDirectory.list(directory.path("v1"))
        #expect(listed.map(\.relative) == ["eea.yaml", "link.yaml", "x_test.yaml"])
        #expect(listed.map(\.size) == [5, 5, 6])
    }

    /// A name that is not UTF-8 is harmless where no policy can be, and refused by name where one could.
    @Test func namesThatAreNotUTF8() throws {
        func make(_ directory: Directory, _ name: [UInt8], directory isDirectory: Bool = false) {
            let path = Array(directory.path("p").utf8) + [UInt8(ascii: "/")] + name + [0]
            path.withUnsafeBufferPointer { buffer in
                let cPath = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                if isDirectory { _ = mkdir(cPath, 0o700) } else { close(open(cPath, O_CREAT | O_WRONLY, 0o600)) }
            }
        }
        let stray = try Directory()
        try stray.write("p/eea.yaml")
        make(stray, Array("notes".utf8) + [0xFF] + Array(".txt".utf8))
        #expect(try PolicyDirectory.read(stray.path("p")).policies.map(\.path) == ["eea.yaml"])
        let policy = try Directory()
        try policy.write("p/eea.yaml")
        make(policy, Array("bad".utf8) + [0xFE] + Array(".yaml".utf8))
        #expect(refusal(policy.path("p"))?.contains("bad\\xfe.yaml: the name is not valid UTF-8") == true, "\(refusal(policy.path("p")) ?? "read")")
        let folder = try Directory()
        try folder.write("p/eea.yaml")
        make(folder, Array("sub".utf8) + [0xC3], directory: true)
        #expect(refusal(folder.path("p"))?.contains("the name is not valid UTF-8") == true)
    }
}
