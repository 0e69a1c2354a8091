@testable import ConsentReceipts
import Foundation
import PolicyEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The receipts directory is consentd's own: it is created or adopted only when it holds
/// receipts and nothing else, and the policy archive in it holds exactly what receipts name.
@Suite struct ReceiptDirectoryTests {
    final class Scratch {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("rd-\(UUID().uuidString.prefix(8))").path
        init() throws { try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: root) }
        func mode(_ path: String) -> UInt16 {
            var info = stat()
            stat(path, &info)
            return UInt16(info.st_mode & 0o7777)
        }
    }

    func refusal(_ directory: String) -> String? {
        do {
            try ReceiptFiles.prepare(directory, fileMode: 0o600)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func aSharedDirectoryIsRefusedAndLeftAsItWas() throws {
        let scratch = try Scratch()
        let shared = scratch.root + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: false)
        chmod(shared, 0o1777)
        #expect(refusal(shared)?.contains("is a shared directory (mode 1777)") == true)
        #expect(scratch.mode(shared) == 0o1777)
    }

    @Test func aDirectoryHoldingOtherFilesIsRefusedAndLeftAsItWas() throws {
        let scratch = try Scratch()
        let other = scratch.root + "/var-log"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: false)
        chmod(other, 0o755)
        FileManager.default.createFile(atPath: other + "/app.log", contents: Data("other app\n".utf8))
        FileManager.default.createFile(atPath: other + "/receipts-000001.jsonl", contents: Data())
        let refused = refusal(other)
        #expect(refused?.contains("holds files that are not receipts (app.log)") == true, "\(refused ?? "adopted")")
        #expect(scratch.mode(other) == 0o755)
    }

    /// What a file system or an operator leaves beside receipts is not a reason to refuse.
    @Test func aVolumeOfItsOwnIsAdopted() throws {
        let scratch = try Scratch()
        let volume = scratch.root + "/volume"
        try FileManager.default.createDirectory(atPath: volume + "/lost+found", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: volume + "/.nfs000001", contents: Data())
        FileManager.default.createFile(atPath: volume + "/receipts-000001.jsonl.1.gz", contents: Data())
        #expect(refusal(volume) == nil)
    }

    @Test func aNewOrOwnDirectoryIsMadePrivate() throws {
        let scratch = try Scratch()
        let fresh = scratch.root + "/a/b/receipts"
        #expect(refusal(fresh) == nil)
        #expect(scratch.mode(fresh) == 0o700)
        let own = scratch.root + "/own"
        try FileManager.default.createDirectory(atPath: own + "/policies", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: own + "/receipts-000001.jsonl", contents: Data(), attributes: [.posixPermissions: 0o644])
        chmod(own, 0o755)
        #expect(refusal(own) == nil)
        #expect(scratch.mode(own) == 0o700)
        #expect(scratch.mode(own + "/receipts-000001.jsonl") == 0o600)
        FileManager.default.createFile(atPath: scratch.root + "/file", contents: Data())
        #expect(refusal(scratch.root + "/file")?.contains("is not a directory") == true)
    }

    /// Review 21 F6: a receipts file name that is a symbolic link (or not a file) is refused, and
    /// the file it points to keeps its mode: narrowing and appending never follow it elsewhere.
    @Test func aReceiptsNameThatIsNotARegularFileIsRefusedAndNotFollowed() throws {
        let scratch = try Scratch()
        let victim = scratch.root + "/victim.txt"
        FileManager.default.createFile(atPath: victim, contents: Data("keep\n".utf8))
        chmod(victim, 0o644)
        let directory = scratch.root + "/r"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        symlink(victim, directory + "/receipts-000001.jsonl")
        #expect(refusal(directory)?.contains("receipts-000001.jsonl, which is not a regular file") == true, "\(String(describing: refusal(directory)))")
        #expect(scratch.mode(victim) == 0o644)
        unlink(directory + "/receipts-000001.jsonl")
        try FileManager.default.createDirectory(atPath: directory + "/receipts-000002.jsonl", withIntermediateDirectories: false)
        #expect(refusal(directory)?.contains("receipts-000002.jsonl, which is not a regular file") == true)
    }

    /// A temporary archive directory left by a daemon that died is removed on the next start,
    /// also when that start's revision is already archived.
    @Test func anAbandonedArchiveIsRemovedWhenTheRevisionIsAlreadySaved() throws {
        let scratch = try Scratch()
        let sources = [PolicySource(path: "eea.yaml", text: "a: 1\n")]
        try PolicyArchive.save(sources, revision: "r1", receipts: scratch.root)
        // A pid that is not running (above the kernel's pid_max).
        let abandoned = scratch.root + "/policies/.incoming-r1-99999998"
        try FileManager.default.createDirectory(atPath: abandoned, withIntermediateDirectories: false)
        try PolicyArchive.save(sources, revision: "r1", receipts: scratch.root)
        #expect(!FileManager.default.fileExists(atPath: abandoned))
    }

    /// Whatever sits where a revision's sources belong must be those sources; an archive that
    /// cannot be written leaves no temporary directory behind and names the cause.
    @Test func theArchiveHoldsExactlyTheSourcesOfTheRevision() throws {
        let scratch = try Scratch()
        let sources = [PolicySource(path: "eea.yaml", text: "a: 1\n"), PolicySource(path: "us/us.yaml", text: "b: 2\n")]
        try PolicyArchive.save(sources, revision: "r1", receipts: scratch.root)
        #expect(FileManager.default.contents(atPath: scratch.root + "/policies/r1/us/us.yaml") == Data("b: 2\n".utf8))
        try PolicyArchive.save(sources, revision: "r1", receipts: scratch.root)  // already there, the same
        // A stray file, an emptied directory, an edited copy: each is refused.
        FileManager.default.createFile(atPath: scratch.root + "/policies/r2", contents: Data("x".utf8))
        #expect(throws: (any Error).self) { try PolicyArchive.save(sources, revision: "r2", receipts: scratch.root) }
        try FileManager.default.createDirectory(atPath: scratch.root + "/policies/r3", withIntermediateDirectories: true)
        #expect(throws: (any Error).self) { try PolicyArchive.save(sources, revision: "r3", receipts: scratch.root) }
        try "a: 2\n".write(toFile: scratch.root + "/policies/r1/eea.yaml", atomically: false, encoding: .utf8)
        do {
            try PolicyArchive.save(sources, revision: "r1", receipts: scratch.root)
            Issue.record("an edited archive was trusted")
        } catch {
            #expect("\(error)".contains("does not hold this revision's eea.yaml"), "\(error)")
        }
        // Unwritable: the cause is named and no temporary directory is left.
        if getuid() != 0 {
            chmod(scratch.root + "/policies", 0o500)
            #expect(throws: (any Error).self) { try PolicyArchive.save(sources, revision: "r4", receipts: scratch.root) }
            chmod(scratch.root + "/policies", 0o700)
        }
        let clash = [PolicySource(path: "eea.yaml/x.yaml", text: "c\n")]
        FileManager.default.createFile(atPath: scratch.root + "/blocker", contents: Data())
        do {
            try PolicyArchive.save(clash + sources, revision: "r5", receipts: scratch.root + "/blocker")
            Issue.record("archived below a file")
        } catch {
            #expect("\(error)".contains("Not a directory"), "\(error)")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: scratch.root + "/policies")
        #expect(!names.contains { $0.hasPrefix(".incoming") }, "\(names)")
        // A crashed daemon's temporary directory is removed by the next archive.
        try FileManager.default.createDirectory(atPath: scratch.root + "/policies/.incoming-r9-999999999", withIntermediateDirectories: true)
        try PolicyArchive.save(sources, revision: "r6", receipts: scratch.root)
        #expect(!FileManager.default.fileExists(atPath: scratch.root + "/policies/.incoming-r9-999999999"))
    }
}
