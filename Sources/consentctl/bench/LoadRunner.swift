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
}

/// What one measured run produced.
struct LoadResult: Sendable {
    var requests = 0
    var decisions = 0
    var allowed = 0
    var denied = 0
    var errors: [Int: Int] = [:]
    var seconds = 0.0
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

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
    }
}

@inline(__always) func monotonicNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

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
        for index in 0..<shape.connections {
            let thread = Thread {
                let result = Result {
                    let client = try ConsentClient(socketPath: socket, timeout: timeout)
                    defer { client.close() }
                    if let rate = shape.rate {
                        return try openLoop(client: client, pool: pool, offset: index * 7919, rate: rate / Double(shape.connections), start: start, measureFrom: measureFrom, end: end, progress: progress)
                    }
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

    static func openLoop(client: ConsentClient, pool: RequestPool, offset: Int, rate: Double, start: UInt64, measureFrom: UInt64, end: UInt64, progress: Progress) throws -> LoadResult {
        let schedule = OpenLoopSchedule(start: start, ratePerSecond: rate)
        let requests = pool.requests
        let total = UInt64(max(1, (Double(end - start) / 1e9 * rate).rounded()))
        let sendError = Mutex<Error?>(nil)
        let sender = Thread {
            var index: UInt64 = 0
            while index < total {
                let due = schedule.intendedTime(of: index)
                var now = monotonicNanoseconds()
                if now < due {
                    let wait = due - now
                    if wait > 200_000 { usleep(useconds_t((wait - 100_000) / 1000)) }
                    while now < due { now = monotonicNanoseconds() }
                }
                // Send everything that is due (catching up after a stall keeps the schedule).
                while index < total && schedule.intendedTime(of: index) <= now {
                    client.send(id: index + 1, encodedBody: requests[(offset + Int(index)) & (requests.count - 1)].body)
                    index += 1
                }
                do { try client.flush() } catch {
                    sendError.withLock { $0 = error }
                    return
                }
            }
        }
        sender.start()
        var result = LoadResult()
        var received: UInt64 = 0
        while received < total {
            let summary: ResponseSummary?
            do { summary = try client.receiveFrame { ResponseSummary.scan($0) } } catch {
                if let error = sendError.withLock({ $0 }) { throw error }
                throw error
            }
            let now = monotonicNanoseconds()
            received += 1
            progress.requests.add(1, ordering: .relaxed)
            guard let summary, summary.id >= 1 else { result.errors[-2, default: 0] += 1; continue }
            let intended = schedule.intendedTime(of: summary.id - 1)
            guard intended >= measureFrom else { continue }
            progress.measuring.store(true, ordering: .relaxed)
            _ = result.histogram.record(now > intended ? now - intended : 0)
            result.requests += 1
            let request = requests[(offset + Int(summary.id - 1)) & (requests.count - 1)]
            if summary.errorCode != 0 { result.errors[summary.errorCode, default: 0] += 1 } else { result.decisions += request.decisions }
            result.allowed += summary.allowed
            result.denied += summary.denied
        }
        while !sender.isFinished { usleep(1000) }
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
