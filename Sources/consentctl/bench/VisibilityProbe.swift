import ConsentClient
import ConsentModel
import ConsentWire
import Foundation
import PolicyEngine

/// `consentctl bench --socket A --visibility B`: how long a grant acknowledged by daemon A takes
/// to change daemon B's answer. At `rate` grants per second (each for a fresh subject), it
/// records through A, then asks B back to back until B allows, and reports the delay from A's
/// acknowledgement to B's first allow (p50, p99, max). B is polled by one client with one Check
/// in flight, so the figure includes up to one Check round trip of B.
struct VisibilityProbe {
    let writer: String
    let reader: String
    let rate: Double
    let duration: Double
    let seed: UInt64
    let set: PolicySet

    /// A purpose, data category and jurisdiction for which a grant is what turns deny into allow.
    func question() throws -> (purpose: String, data: String, jurisdiction: String?) {
        for jurisdiction in ["DE", nil, "US-CA"] as [String?] {
            for purpose in set.purposes.leaves {
                for data in set.dataCategories.leaves {
                    let request = DecisionRequest(subject: "probe", purpose: purpose, dataCategory: data, context: RequestContext(jurisdiction: jurisdiction))
                    let grant = ConsentRecord(subject: "probe", purpose: purpose, dataCategory: nil, choice: .grant, recordedAt: .now(), noticeVersion: 1_000)
                    let without = set.decide(request, consent: [][...], now: .now())
                    let with = set.decide(request, consent: [grant.compact(in: set.vocabulary)][...], now: .now())
                    if without.effect == .deny && with.reason == .consentGranted { return (purpose, data, jurisdiction) }
                }
            }
        }
        throw ValidationErrorText("no purpose in these policies is allowed by a grant alone; --visibility needs one")
    }

    /// The delays (µs) of the grants B allowed, and how many it did not allow in time.
    struct Outcome {
        var delays: [Double] = []
        var unseen = 0
    }

    /// Each grant waits for B at most 10 s, and never past the end of the run by more than 1 s.
    func run() throws -> Outcome {
        let (purpose, data, jurisdiction) = try question()
        let a = try ConsentClient(socketPath: writer, timeout: 10)
        let b = try ConsentClient(socketPath: reader, timeout: 10)
        let interval = 1 / rate
        let end = Date().addingTimeInterval(duration)
        var outcome = Outcome()
        var next = Date()
        var index = 0
        while Date() < end {
            let subject = "visibility-\(seed)-\(ProcessInfo.processInfo.processIdentifier)-\(index)"
            index += 1
            let record = ConsentRecord(subject: subject, purpose: purpose, choice: .grant, recordedAt: .now(), source: "bench", noticeVersion: 1_000)
            _ = try a.record([record])
            let acknowledged = DispatchTime.now().uptimeNanoseconds
            var seen = false
            let giveUp = min(Date().addingTimeInterval(10), end.addingTimeInterval(1))
            while !seen && Date() < giveUp {
                seen = try b.check(subject: subject, purpose: purpose, dataCategory: data, context: RequestContext(jurisdiction: jurisdiction)).decision == .allow
            }
            if seen {
                outcome.delays.append(Double(DispatchTime.now().uptimeNanoseconds - acknowledged) / 1e3)
            } else {
                outcome.unseen += 1
            }
            next = next.addingTimeInterval(interval)
            let pause = next.timeIntervalSinceNow
            if pause > 0 { usleep(useconds_t(min(pause, 1) * 1_000_000)) } else { next = Date() }
        }
        return outcome
    }

    static func report(_ outcome: Outcome, rate: Double) -> String {
        let sorted = outcome.delays.sorted()
        func at(_ q: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * q).rounded()))] }
        return String(format: "visibility: %d grants at %.0f/s; from A's acknowledgement to B's first allow: p50 %.0f us, p99 %.0f us, max %.0f us",
                      sorted.count, rate, at(0.5), at(0.99), sorted.last ?? 0)
            + (outcome.unseen == 0 ? "" : "; \(outcome.unseen) grants were never allowed by B within 10 s (or by the end of the run)")
    }
}

struct ValidationErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}
