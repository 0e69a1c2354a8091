import ConsentClient
import Foundation
import Histogram
import Synchronization

/// How a run drives the socket.
struct LoadShape: Sendable {
    var connections: Int
    /// Closed loop: requests kept in flight per connection.
    var depth: Int
    /// Open loop: total requests per second (nil: closed loop).
    var rate: Double?
    var warmup: Double
    var duration: Double
    /// Open loop: how long before each send the generator stops sleeping and spins (0: never).
    var spinNanoseconds: UInt64 = 0
}

/// What one measured run produced.
struct LoadResult: Sendable {
    var requests = 0
    var decisions = 0
    var allowed = 0
    var denied = 0
    var errors: [Int: Int] = [:]
    var seconds = 0.0
    /// Latency (ns): closed loop from the send, open loop from the intended send time.
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    /// Open loop: how late each request left the generator compared with its intended time (ns).
    var sendLag: Histogram<UInt64>?
    /// Answers received in each second of the measured run.
    var perSecond: [Int] = []

    var requestsPerSecond: Double { Double(requests) / max(seconds, 1e-9) }
    var decisionsPerSecond: Double { Double(decisions) / max(seconds, 1e-9) }

    mutating func merge(_ other: LoadResult) {
        requests += other.requests
        decisions += other.decisions
        allowed += other.allowed
        denied += other.denied
        for (code, count) in other.errors { errors[code, default: 0] += count }
        seconds = max(seconds, other.seconds)
        histogram.add(other.histogram)
        if let lag = other.sendLag {
            if sendLag == nil { sendLag = lag } else { sendLag!.add(lag) }
        }
        if perSecond.count < other.perSecond.count { perSecond += [Int](repeating: 0, count: other.perSecond.count - perSecond.count) }
        for (second, count) in other.perSecond.enumerated() { perSecond[second] += count }
    }

    /// Counts an answer received at `now` in its second of the measured run.
    mutating func countAnswer(at now: UInt64, measureFrom: UInt64) {
        guard now >= measureFrom else { return }
        let second = Int((now - measureFrom) / 1_000_000_000)
        guard second < 1 << 20 else { return }
        if second >= perSecond.count { perSecond += [Int](repeating: 0, count: second + 1 - perSecond.count) }
        perSecond[second] += 1
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the open loop's absolute sleeps use.
@inline(__always) func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

/// Drives `shape.connections` connections against a socket (the daemon or the echo floor) and
/// measures latency into an HdrHistogram per connection, merged at the end.
enum LoadRunner {
    /// Live totals for the progress line.
    final class Progress: Sendable {
        let requests = Atomic<Int>(0)
        let measuring = Atomic<Bool>(false)
    }

    static func run(socket: String, pool: RequestPool, shape: LoadShape, progress: Progress, timeout: Double = 30) throws -> LoadResult {
        let results = Mutex<[Result<LoadResult, Error>]>([])
        let group = DispatchGroup()
        let start = monotonicNanoseconds()
        let measureFrom = start + UInt64(shape.warmup * 1e9)
        let end = measureFrom + UInt64(shape.duration * 1e9)
        if let rate = shape.rate {
            let clients = try (0..<shape.connections).map { _ in try ConsentClient(socketPath: socket, timeout: timeout) }
            defer { for client in clients { client.close() } }
            var generator = OpenLoopGenerator(clients: clients, pool: pool, rate: rate, start: start, measureFrom: measureFrom, end: end, spin: shape.spinNanoseconds)
            defer { generator.deallocate() }
            var total = try generator.run(progress: progress)
            total.seconds = shape.duration
            return total
        }
        for index in 0..<shape.connections {
            let thread = Thread {
                let result = Result {
                    let client = try ConsentClient(socketPath: socket, timeout: timeout)
                    defer { client.close() }
                    return try closedLoop(client: client, pool: pool, offset: index * 7919, depth: shape.depth, measureFrom: measureFrom, end: end, progress: progress)
                }
                results.withLock { $0.append(result) }
                group.leave()
            }
            thread.stackSize = 1 << 20
            group.enter()
            thread.start()
        }
        group.wait()
        var total = LoadResult()
        for result in results.withLock({ $0 }) { total.merge(try result.get()) }
        total.seconds = shape.duration
        return total
    }

    static func closedLoop(client: ConsentClient, pool: RequestPool, offset: Int, depth: Int, measureFrom: UInt64, end: UInt64, progress: Progress) throws -> LoadResult {
        var result = LoadResult()
        let ring = max(1, depth).nextPowerOfTwo * 2
        var sentAt = [UInt64](repeating: 0, count: ring)
        var kinds = [Int](repeating: 0, count: ring)
        var nextID: UInt64 = 1
        var next = offset
        var inFlight = 0
        let requests = pool.requests
        func sendOne() {
            let request = requests[next & (requests.count - 1)]
            next &+= 1
            sentAt[Int(nextID) & (ring - 1)] = monotonicNanoseconds()
            kinds[Int(nextID) & (ring - 1)] = request.decisions
            client.send(id: nextID, encodedBody: request.body)
            nextID &+= 1
            inFlight += 1
        }
        while inFlight < depth { sendOne() }
        try client.flush()
        var measuring = false
        var stopping = false
        while inFlight > 0 {
            var answered = 0
            repeat {
                let summary = try client.receiveFrame { ResponseSummary.scan($0) }
                let now = monotonicNanoseconds()
                inFlight -= 1
                answered += 1
                guard let summary else { result.errors[-2, default: 0] += 1; continue }
                if !measuring && now >= measureFrom {
                    measuring = true
                    progress.measuring.store(true, ordering: .relaxed)
                }
                if measuring && !stopping {
                    let slot = Int(summary.id) & (ring - 1)
                    _ = result.histogram.record(now &- sentAt[slot])
                    result.requests += 1
                    if summary.errorCode != 0 { result.errors[summary.errorCode, default: 0] += 1 } else { result.decisions += kinds[slot] }
                    result.allowed += summary.allowed
                    result.denied += summary.denied
                    result.countAnswer(at: now, measureFrom: measureFrom)
                }
                if now >= end { stopping = true }
            } while client.hasBufferedFrame
            progress.requests.add(answered, ordering: .relaxed)
            if !stopping {
                for _ in 0..<answered { sendOne() }
                try client.flush()
            }
        }
        return result
    }
}

extension Int {
    var nextPowerOfTwo: Int {
        var value = 1
        while value < self { value <<= 1 }
        return value
    }
}
