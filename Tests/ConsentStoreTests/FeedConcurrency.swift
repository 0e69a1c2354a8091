import ConsentModel
@testable import ConsentStore
import Foundation
import Synchronization
import Testing

/// Writes through a feed from several threads while another thread polls it, as a daemon does
/// (its connections' writes and its follower's looks): every write lands once, the index ends
/// equal to a fresh load, and no look mistakes the process's own progress for a store whose
/// counter went backwards (which reloaded the whole index under the writers: 1.5 s per write).
func writesAndLooksInterleaveWithoutReloading(_ store: any ConsentStorage, fresh: () throws -> any ConsentStorage) throws {
    let vocabulary = Vocabulary()
    let feed = try ConsentFeed(store: store, vocabulary: vocabulary)
    let done = Flag()
    let stopped = DispatchSemaphore(value: 0)
    let poller = Thread {
        while !done.value { try? feed.poll() }
        stopped.signal()
    }
    poller.start()
    let group = DispatchGroup()
    let failures = Mutex<[String]>([])
    for writer in 0..<4 {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            for step in 0..<60 {
                let record = ConsentRecord(subject: "w\(writer)-\(step % 7)", purpose: step % 2 == 0 ? "marketing" : "analytics",
                                           choice: step % 3 == 0 ? .deny : .grant, recordedAt: Timestamp(microseconds: 1_700_000_000_000_000 + Int64(step)), source: "test")
                do { _ = try feed.record([record], idempotencyKey: nil, payload: nil, now: .now()) } catch { failures.withLock { $0.append("\(error)") } }
            }
        }
    }
    group.wait()
    done.set()
    stopped.wait()
    #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 }.prefix(3))")
    #expect(feed.reloads == 0, "a look reloaded the whole index \(feed.reloads) times while this process wrote")
    let loaded = try ConsentFeed(store: fresh(), vocabulary: vocabulary)
    #expect(loaded.appliedSequence == 240 && feed.appliedSequence == 240)
    for writer in 0..<4 {
        for subject in 0..<7 {
            #expect(Array(loaded.index.snapshot().records(of: "w\(writer)-\(subject)")) == Array(feed.index.snapshot().records(of: "w\(writer)-\(subject)")))
        }
    }
}

private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false
    var value: Bool { lock.withLock { raised } }
    func set() { lock.withLock { raised = true } }
}
