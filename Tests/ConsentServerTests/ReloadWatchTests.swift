import Foundation
@testable import ConsentServer
import Testing

/// When the policy poller reloads.
@Suite struct ReloadWatchTests {
    let start = ContinuousClock.now

    /// A signature from readable paths.
    func sig(_ entries: [String: [Int]]) -> ReloadWatch.Signature {
        Dictionary(uniqueKeysWithValues: entries.map { (Array($0.key.utf8), $0.value) })
    }

    @Test func aChangeIsReloadedOnceTheDirectoryHasLookedTheSameForTwoPolls() {
        var watch = ReloadWatch(loaded: sig(["a.yaml": [1, 1]]))
        #expect(watch.isDue(signature: sig(["a.yaml": [1, 1]]), asked: false, now: start) == false)
        // A deploy in progress: one file gone, then the next one changed: wait each time.
        #expect(watch.isDue(signature: sig(["a.yaml": [1, 1], "b.yaml": [0, 2]]), asked: false, now: start) == false)
        #expect(watch.isDue(signature: sig(["a.yaml": [1, 1], "b.yaml": [9, 3]]), asked: false, now: start) == false)
        // Settled.
        #expect(watch.isDue(signature: sig(["a.yaml": [1, 1], "b.yaml": [9, 3]]), asked: false, now: start) == true)
        watch.attempted(sig(["a.yaml": [1, 1], "b.yaml": [9, 3]]), retryable: false, now: start)
        #expect(watch.isDue(signature: sig(["a.yaml": [1, 1], "b.yaml": [9, 3]]), asked: false, now: start) == false)
        // A change that goes back before it settles is no change.
        #expect(watch.isDue(signature: sig(["a.yaml": [1, 1]]), asked: false, now: start) == false)
        #expect(watch.isDue(signature: sig(["a.yaml": [1, 1], "b.yaml": [9, 3]]), asked: false, now: start) == false)
        #expect(watch.candidate == nil)
    }

    @Test func sighupReloadsAtOnce() {
        var watch = ReloadWatch(loaded: [:])
        #expect(watch.isDue(signature: nil, asked: true, now: start) == true)
        #expect(watch.isDue(signature: sig(["x.yaml": [1, 1]]), asked: true, now: start) == true)
    }

    /// A failed compile waits for the next change; a failure outside the policies (the archive
    /// beside the receipts, on a full disk) is retried with a growing backoff.
    @Test func onlyFailuresOutsideThePoliciesAreRetried() {
        var watch = ReloadWatch(loaded: [:])
        let changed = sig(["a.yaml": [2, 2]])
        watch.attempted(changed, retryable: false, now: start)
        #expect(watch.isDue(signature: changed, asked: false, now: start + .seconds(3600)) == false)
        watch.attempted(changed, retryable: true, now: start)
        #expect(watch.isDue(signature: changed, asked: false, now: start + .milliseconds(900)) == false)
        #expect(watch.isDue(signature: changed, asked: false, now: start + .seconds(1)) == true)
        watch.attempted(changed, retryable: true, now: start + .seconds(1))
        #expect(watch.isDue(signature: changed, asked: false, now: start + .milliseconds(2900)) == false)
        #expect(watch.isDue(signature: changed, asked: false, now: start + .seconds(3)) == true)
        for _ in 0..<10 { watch.attempted(changed, retryable: true, now: start) }
        #expect(watch.backoff == .seconds(60))
        watch.attempted(changed, retryable: false, now: start)
        #expect(watch.retryAt == nil && watch.backoff == .seconds(1))
    }

    /// NFC and NFD spellings of one file name are two files to the watcher, as to the loader.
    @Test func canonicallyEquivalentNamesAreTwoFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rw-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "a: 1\n".write(toFile: directory + "/jos\u{E9}.yaml", atomically: false, encoding: .utf8)
        try "b: 2\n".write(toFile: directory + "/jose\u{301}.yaml", atomically: false, encoding: .utf8)
        let before = PolicyReloader.signature(of: directory)
        #expect(before.count == 2)
        try FileManager.default.removeItem(atPath: directory + "/jose\u{301}.yaml")
        #expect(PolicyReloader.signature(of: directory) != before, "deleting one twin is a change")
    }
}
