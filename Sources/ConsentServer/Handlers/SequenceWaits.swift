import ConsentStore
import DequeModule
import HeapModule
import NIOCore
import Synchronization

/// Requests waiting for the consent index to reach a store sequence (`context.min_sequence`, or
/// a write this daemon acknowledged), one list per event loop, looked at by one timer per loop —
/// every millisecond while any request waits. What waiting costs is per loop, not per request:
/// ten thousand waiting requests cost one look a millisecond until they are answered. (Review:
/// a timer per request, backing off to 8 ms, made 10 240 waiting requests 1.3 M timer callbacks
/// a second, and a plain Check's median 1.2 s.)
package final class SequenceWaits: Sendable {
    private let index: ConsentIndex
    private let lists = Mutex<[ObjectIdentifier: LoopWaits]>([:])

    package init(index: ConsentIndex) { self.index = index }

    /// The list of `loop` (made on first use); use it on that loop only.
    func on(_ loop: any EventLoop) -> LoopWaits {
        lists.withLock { lists in
            if let list = lists[ObjectIdentifier(loop)] { return list }
            let list = LoopWaits(loop: loop, index: index)
            lists[ObjectIdentifier(loop)] = list
            return list
        }
    }

    /// Requests waiting now, on every loop (for tests; read on any thread).
    package var waiting: Int { lists.withLock { $0.values.reduce(0) { $0 + $1.count.load(ordering: .relaxed) } } }
    /// Looks taken so far, on every loop: one per loop per millisecond while any request waits,
    /// however many do (for tests).
    package var looks: Int { lists.withLock { $0.values.reduce(0) { $0 + $1.looks.load(ordering: .relaxed) } } }
}

/// The waits of one event loop. Confined to `loop`: every method runs on it.
final class LoopWaits: @unchecked Sendable {
    /// One waiting request: answered (`finish` called, once) when the index holds `sequence` or
    /// at `deadline`, whichever comes first; or cancelled (its connection closed).
    final class Wait {
        let sequence: UInt64
        let deadline: NIODeadline
        /// nil once answered or cancelled.
        fileprivate var finish: (() -> Void)?

        init(sequence: UInt64, deadline: NIODeadline, finish: @escaping () -> Void) {
            self.sequence = sequence
            self.deadline = deadline
            self.finish = finish
        }
    }

    private struct BySequence: Comparable {
        let wait: Wait
        static func < (a: Self, b: Self) -> Bool { a.wait.sequence < b.wait.sequence }
        static func == (a: Self, b: Self) -> Bool { a.wait === b.wait }
    }

    let loop: any EventLoop
    private let index: ConsentIndex
    /// Smallest sequence first; answered and cancelled waits are dropped when they reach the top
    /// (or when they outnumber the live ones).
    private var bySequence = Heap<BySequence>()
    /// Earliest deadline first: every wait of a daemon is as long, so arrival order is deadline order.
    private var byDeadline = Deque<Wait>()
    /// Waits not yet answered or cancelled.
    fileprivate let count = Atomic<Int>(0)
    fileprivate let looks = Atomic<Int>(0)
    private var live = 0
    private var ticking = false

    fileprivate init(loop: any EventLoop, index: ConsentIndex) {
        self.loop = loop
        self.index = index
    }

    /// Waits for `sequence` until `deadline`, then calls `finish` (on this loop, once).
    func add(sequence: UInt64, deadline: NIODeadline, finish: @escaping () -> Void) -> Wait {
        loop.preconditionInEventLoop()
        let wait = Wait(sequence: sequence, deadline: deadline, finish: finish)
        bySequence.insert(BySequence(wait: wait))
        if let last = byDeadline.last, last.deadline > deadline {
            // Not in arrival order (a shorter wait): keep the deque sorted.
            let at = byDeadline.lastIndex { $0.deadline <= deadline }.map { $0 + 1 } ?? 0
            byDeadline.insert(wait, at: at)
        } else {
            byDeadline.append(wait)
        }
        live += 1
        count.store(live, ordering: .relaxed)
        scheduleTick()
        return wait
    }

    /// Answers `wait` now (shutting down), unless it was answered or cancelled.
    func answerNow(_ wait: Wait) {
        guard let finish = wait.finish else { return }
        wait.finish = nil
        live -= 1
        count.store(live, ordering: .relaxed)
        finish()
    }

    /// Forgets `wait` without answering it (its connection closed).
    func cancel(_ wait: Wait) {
        guard wait.finish != nil else { return }
        wait.finish = nil
        live -= 1
        count.store(live, ordering: .relaxed)
        if live == 0 { clear() }
    }

    private func scheduleTick() {
        guard !ticking, live > 0 else { return }
        ticking = true
        loop.assumeIsolated().scheduleTask(in: .milliseconds(1)) { self.tick() }
    }

    /// One look: answers every wait whose sequence the index holds or whose deadline passed.
    private func tick() {
        ticking = false
        looks.add(1, ordering: .relaxed)
        let applied = index.snapshot().sequence
        let now = NIODeadline.now()
        var due: [Wait] = []
        while let top = bySequence.min, top.wait.finish == nil || top.wait.sequence <= applied {
            let wait = bySequence.removeMin().wait
            if wait.finish != nil { due.append(wait) }
        }
        while let first = byDeadline.first, first.finish == nil || first.deadline <= now {
            let wait = byDeadline.removeFirst()
            if wait.finish != nil { due.append(wait) }
        }
        // A wait can be due on both counts; `answerNow` answers it once. Answering runs the
        // connection's next requests, which may add waits.
        for wait in due { answerNow(wait) }
        if live == 0 {
            clear()
        } else if bySequence.count > 2 * live + 64 {
            bySequence = Heap(bySequence.unordered.filter { $0.wait.finish != nil })
        }
        scheduleTick()
    }

    private func clear() {
        bySequence = Heap()
        byDeadline.removeAll()
    }
}
