import ConsentClient
import Foundation
import Histogram
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The open loop: one sending thread drives every connection on one fixed schedule (request i is
/// due at start + i / rate and goes to connection i mod N); a receiving thread per connection,
/// blocked in `poll` between answers, measures each answer from its request's intended time
/// (coordinated omission corrected, as wrk2 does).
///
/// The sender sleeps until each due time on an absolute deadline (`clock_nanosleep` with
/// `TIMER_ABSTIME` on CLOCK_MONOTONIC, its timer slack cut to 1 ns), so it uses no CPU between
/// sends and takes no core from the daemon it measures; `--spin` adds a busy wait before each
/// deadline, off by default. (Review: the old generator spun up to 200 µs before every send, one
/// spinning thread per connection; on a 2-core machine it measured itself: p50 848 µs at 5 k/s
/// against an echo server that answers in ~30 µs.) How late each send left compared with its
/// intended time is measured too (`sendLag`): a late generator is reported, not blamed on the
/// daemon.
struct OpenLoopGenerator: @unchecked Sendable {
    let clients: [ConsentClient]
    let pool: RequestPool
    let schedule: OpenLoopSchedule
    let measureFrom: UInt64
    let end: UInt64
    let spin: UInt64
    /// Requests in the schedule, and each connection's share of them.
    let total: UInt64
    /// When each request actually left (a ring; the sender writes a slot before sending the
    /// request, its receiver reads it after the answer came back).
    private let sentAt: UnsafeMutableBufferPointer<UInt64>
    private let sentMask: UInt64

    init(clients: [ConsentClient], pool: RequestPool, rate: Double, start: UInt64, measureFrom: UInt64, end: UInt64, spin: UInt64) {
        self.clients = clients
        self.pool = pool
        self.schedule = OpenLoopSchedule(start: start, ratePerSecond: rate)
        self.measureFrom = measureFrom
        self.end = end
        self.spin = spin
        self.total = UInt64(max(1, (Double(end - start) / 1e9 * rate).rounded()))
        let slots = Int(min(total, 1 << 22)).nextPowerOfTwo
        sentAt = .allocate(capacity: slots)
        sentAt.initialize(repeating: 0)
        sentMask = UInt64(slots - 1)
    }

    /// Frees the send-time ring (after `run`).
    func deallocate() { sentAt.deallocate() }

    /// How many of the schedule's requests go to connection `index`.
    func share(of index: Int) -> UInt64 {
        let n = UInt64(clients.count)
        return total / n + (UInt64(index) < total % n ? 1 : 0)
    }

    mutating func run(progress: LoadRunner.Progress) throws -> LoadResult {
        let sendError = Mutex<Error?>(nil)
        let lag = Mutex<Histogram<UInt64>?>(nil)
        let results = Mutex<[Result<LoadResult, Error>]>([])
        let group = DispatchGroup()
        let generator = self
        for (index, client) in clients.enumerated() {
            group.enter()
            let receiver = Thread {
                let result = Result { try generator.receive(on: client, index: index, progress: progress) }
                results.withLock { $0.append(result) }
                group.leave()
            }
            receiver.stackSize = 1 << 20
            receiver.start()
        }
        let sender = Thread {
            do {
                let histogram = try generator.send()
                lag.withLock { $0 = histogram }
            } catch {
                sendError.withLock { $0 = error }
                // Unblock the receivers: they wait for answers that will never be sent.
                for client in generator.clients { client.close() }
            }
        }
        sender.stackSize = 1 << 20
        sender.start()
        group.wait()
        while !sender.isFinished { usleep(1000) }
        if let error = sendError.withLock({ $0 }) { throw error }
        var total = LoadResult()
        for result in results.withLock({ $0 }) { total.merge(try result.get()) }
        total.sendLag = lag.withLock { $0 }
        return total
    }

    /// The sending thread: sleeps to each due time, sends what is due, flushes the connections it
    /// wrote to. Returns the send lag of every measured request.
    ///
    /// Waking from a sleep takes time (here ~35 µs at the median, and a hundred or more at the
    /// tail, on a virtual machine's timer): the sender asks to be woken that much early — a running
    /// median of how late its past wake-ups were — and then sends what is due within that lead,
    /// without spinning. A request may so leave a few microseconds before its intended time; its
    /// latency is measured from the later of the two (`receive`), never from before it left.
    func send() throws -> Histogram<UInt64> {
        Self.cutTimerSlack()
        var lag = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        let requests = pool.requests
        let n = UInt64(clients.count)
        var touched = [Bool](repeating: false, count: clients.count)
        var index: UInt64 = 0
        // The wake-up lead (ns): follows the median of wake-up overshoots, at most half an interval.
        var lead: Double = 0
        let maximumLead = min(200_000, schedule.intervalNanoseconds / 2)
        while index < total {
            let due = schedule.intendedTime(of: index)
            var now = monotonicNanoseconds()
            if now + UInt64(lead) < due {
                let wake = due - UInt64(lead) - (due - UInt64(lead) > spin ? spin : 0)
                Self.sleep(until: wake)
                now = monotonicNanoseconds()
                let overshoot = Double(now) - Double(wake)
                lead = min(maximumLead, max(0, lead + (overshoot > lead ? 500 : -500)))
                if spin > 0 { while now < due { now = monotonicNanoseconds() } }
            }
            // Everything due by now plus the lead, each to its connection (after a stall, the
            // backlog at once: the schedule is kept, and the lateness is measured).
            while index < total {
                let intended = schedule.intendedTime(of: index)
                guard intended <= now + UInt64(lead) else { break }
                let connection = Int(index % n)
                sentAt[Int(index & sentMask)] = now
                clients[connection].send(id: index + 1, encodedBody: requests[Int(index) & (requests.count - 1)].body)
                touched[connection] = true
                if intended >= measureFrom { _ = lag.record(now > intended ? now - intended : 0) }
                index += 1
                now = monotonicNanoseconds()
            }
            for connection in touched.indices where touched[connection] {
                touched[connection] = false
                try clients[connection].flush()
            }
        }
        return lag
    }

    /// Cuts this thread's timer slack to 1 ns: the kernel's default 50 µs makes every wake-up up
    /// to that late. (prctl(PR_SET_TIMERSLACK) is variadic, so not callable from Swift; writing
    /// /proc/TID/timerslack_ns is the same.)
    static func cutTimerSlack() {
        var link = [CChar](repeating: 0, count: 64)
        let length = readlink("/proc/thread-self", &link, link.count - 1)
        guard length > 0, let tid = String(cString: link).split(separator: "/").last else { return }
        let slack = open("/proc/\(tid)/timerslack_ns", O_WRONLY)
        guard slack >= 0 else { return }
        _ = write(slack, "1", 1)
        close(slack)
    }

    /// Sleeps until `deadline` (CLOCK_MONOTONIC nanoseconds), however often interrupted.
    static func sleep(until deadline: UInt64) {
        var target = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &target, nil) == EINTR {}
    }

    /// A receiving thread: every answer of connection `index`, measured from its intended time.
    func receive(on client: ConsentClient, index: Int, progress: LoadRunner.Progress) throws -> LoadResult {
        var result = LoadResult()
        let requests = pool.requests
        let expected = share(of: index)
        var received: UInt64 = 0
        while received < expected {
            let summary = try client.receiveFrame { ResponseSummary.scan($0) }
            let now = monotonicNanoseconds()
            received += 1
            progress.requests.add(1, ordering: .relaxed)
            guard let summary, summary.id >= 1, summary.id <= total else { result.errors[-2, default: 0] += 1; continue }
            let intended = schedule.intendedTime(of: summary.id - 1)
            guard intended >= measureFrom else { continue }
            progress.measuring.store(true, ordering: .relaxed)
            // From the intended time, or from the send if it left early (within the wake-up lead).
            let from = max(intended, sentAt[Int((summary.id - 1) & sentMask)])
            _ = result.histogram.record(now > from ? now - from : 0)
            result.requests += 1
            result.countAnswer(at: now, measureFrom: measureFrom)
            let request = requests[Int(summary.id - 1) & (requests.count - 1)]
            if summary.errorCode != 0 { result.errors[summary.errorCode, default: 0] += 1 } else { result.decisions += request.decisions }
            result.allowed += summary.allowed
            result.denied += summary.denied
        }
        return result
    }
}
