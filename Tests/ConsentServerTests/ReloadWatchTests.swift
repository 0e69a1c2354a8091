@testable import ConsentServer
import Testing

/// When the policy poller reloads.
@Suite struct ReloadWatchTests {
    let start = ContinuousClock.now

    @Test func aChangeIsReloadedOnceTheDirectoryHasLookedTheSameForTwoPolls() {
        var watch = ReloadWatch(loaded: ["a.yaml": [1, 1]])
        #expect(watch.isDue(signature: ["a.yaml": [1, 1]], asked: false, now: start) == false)
        // A deploy in progress: one file gone, then the next one changed: wait each time.
        #expect(watch.isDue(signature: ["a.yaml": [1, 1], "b.yaml": [0, 2]], asked: false, now: start) == false)
        #expect(watch.isDue(signature: ["a.yaml": [1, 1], "b.yaml": [9, 3]], asked: false, now: start) == false)
        // Settled.
        #expect(watch.isDue(signature: ["a.yaml": [1, 1], "b.yaml": [9, 3]], asked: false, now: start) == true)
        watch.attempted(["a.yaml": [1, 1], "b.yaml": [9, 3]], retryable: false, now: start)
        #expect(watch.isDue(signature: ["a.yaml": [1, 1], "b.yaml": [9, 3]], asked: false, now: start) == false)
        // A change that goes back before it settles is no change.
        #expect(watch.isDue(signature: ["a.yaml": [1, 1]], asked: false, now: start) == false)
        #expect(watch.isDue(signature: ["a.yaml": [1, 1], "b.yaml": [9, 3]], asked: false, now: start) == false)
        #expect(watch.candidate == nil)
    }

    @Test func sighupReloadsAtOnce() {
        var watch = ReloadWatch(loaded: [:])
        #expect(watch.isDue(signature: nil, asked: true, now: start) == true)
        #expect(watch.isDue(signature: ["x.yaml": [1, 1]], asked: true, now: start) == true)
    }

    /// A failed compile waits for the next change; a failure outside the policies (the archive
    /// beside the receipts, on a full disk) is retried with a growing backoff.
    @Test func onlyFailuresOutsideThePoliciesAreRetried() {
        var watch = ReloadWatch(loaded: [:])
        let changed = ["a.yaml": [2, 2]]
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
}
