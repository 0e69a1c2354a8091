import ConsentClient
import ConsentModel
import ConsentServer
import ConsentTesting
import ConsentWire
import Foundation
import Testing

/// Requests that wait for a store sequence (`context.min_sequence`) at scale and at the edges:
/// many at once, connections that close while theirs wait, a connection that pipelines more than
/// --max-in-flight, and a daemon shutting down with a wait longer than its grace period.
@Suite(.serialized) struct SequenceWaitTests {
    static let targeted = "marketing.advertising.targeted", browsing = "user.behavior.browsing"

    /// A Check of `subject` naming `minimum` as its min_sequence.
    static func check(_ subject: String, _ minimum: UInt64) -> Consentd_V1_Request {
        var context = RequestContext(jurisdiction: "DE")
        context.minSequence = minimum
        var request = Consentd_V1_Request()
        request.check = Consentd_V1_CheckRequest.with {
            $0.subjectID = subject
            $0.purpose = targeted
            $0.dataCategory = browsing
            $0.context = Consentd_V1_Context(context)
        }
        return request
    }


    /// 1 600 requests wait at once on 8 connections: the daemon looks at most once a millisecond
    /// per event loop however many wait (the review's per-request timers made 10 240 waiting
    /// requests 1.3 M callbacks a second); a plain Check is answered meanwhile; the waits for the
    /// write are answered, granted, as soon as it is applied. (The waits for the write are sent
    /// last and the write follows at once: on a machine where every suite runs at once, reading
    /// 1 600 frames can take seconds of the 10 s a wait may last.)
    @Test func manyWaitingRequestsCostOneLookPerLoop() async throws {
        let harness = try await DaemonHarness {
            $0.maximumSequenceWait = 10
            $0.eventLoops = 2
        }
        let admin = try harness.client()
        let next = try admin.status().consentSequence + 1
        let waits = harness.daemon.state.sequenceWaits
        var clients: [ConsentClient] = []
        for index in 0..<8 {
            let client = try harness.client()
            // The first four wait for a write that never comes; the others for the next one.
            let minimum = index < 4 ? next + 1_000_000 : next
            for _ in 0..<200 { _ = try client.send(Self.check("erin", minimum)) }
            try client.flush()
            clients.append(client)
        }
        #expect(PostgresDaemonTests.eventually { waits.waiting == 1_600 }, "waiting: \(waits.waiting)")
        let started = Date(), looksBefore = waits.looks
        #expect(try admin.check(subject: "erin", purpose: "service.essential", dataCategory: "user").reason == .legalBasis)
        usleep(300_000)
        let looks = waits.looks - looksBefore, elapsed = Date().timeIntervalSince(started) * 1000
        #expect(looks <= 2 * (Int(elapsed) + 2), "\(looks) looks in \(Int(elapsed)) ms for 1 600 waiting requests on 2 loops")
        #expect(looks > 0)
        _ = try admin.record([grant("erin", Self.targeted)])
        for client in clients[4...] {
            for _ in 0..<200 {
                let response = try client.receive()
                guard case let .check(answer)? = response.result else {
                    Issue.record("not a Check answer: \(response)")
                    break
                }
                #expect(answer.reason == .consentGranted)
            }
        }
        for client in clients[..<4] { client.close() }
        #expect(PostgresDaemonTests.eventually { waits.waiting == 0 })
        try await harness.stop()
    }

    /// The waits of connections that close are forgotten at once, and leave the in-flight count
    /// (review: it leaked one per cancelled wait).
    @Test func closedConnectionsForgetTheirWaits() async throws {
        let harness = try await DaemonHarness {
            $0.maximumSequenceWait = 10
            $0.eventLoops = 2
        }
        let admin = try harness.client()
        let never = try admin.status().consentSequence + 1_000_000
        let waits = harness.daemon.state.sequenceWaits
        var clients: [ConsentClient] = []
        for _ in 0..<4 {
            let client = try harness.client()
            for _ in 0..<100 { _ = try client.send(Self.check("erin", never)) }
            try client.flush()
            clients.append(client)
        }
        #expect(PostgresDaemonTests.eventually { waits.waiting == 400 }, "waiting: \(waits.waiting)")
        for client in clients[2...] { client.close() }
        #expect(PostgresDaemonTests.eventually(2) { waits.waiting == 200 }, "the waits of closed connections were not forgotten: \(waits.waiting)")
        for client in clients[..<2] { client.close() }
        #expect(PostgresDaemonTests.eventually(2) { waits.waiting == 0 })
        #expect(PostgresDaemonTests.eventually { (try? admin.status().counters.inFlight) == 0 }, "in flight: \(String(describing: try? admin.status().counters.inFlight))")
        try await harness.stop()
    }

    /// One connection pipelines 300 requests that wait: never more than --max-in-flight (16)
    /// wait at once — the rest stay unread input — and every one is answered, in the end
    /// CONSENT_UNAVAILABLE.
    @Test func aConnectionNeverHasMoreThanMaxInFlightWaiting() async throws {
        let harness = try await DaemonHarness {
            $0.maximumSequenceWait = 0.02
            $0.maximumInFlight = 16
        }
        let client = try harness.client()
        let waits = harness.daemon.state.sequenceWaits
        for _ in 0..<300 { _ = try client.send(Self.check("fred", 1_000_000)) }
        try client.flush()
        var most = 0
        let reader = Task {
            try (0..<300).map { _ in try client.receive() }
        }
        while !reader.isCancelled, most <= 16 {
            most = max(most, waits.waiting)
            if waits.waiting == 0, most > 0 { break }
            usleep(500)
        }
        let answers = try await reader.value
        #expect(most == 16 || (1...16).contains(most), "\(most) requests of one connection waited at once")
        #expect(answers.allSatisfy { if case let .check(answer)? = $0.result { answer.reason == .consentUnavailable } else { false } })
        try await harness.stop()
    }

    /// The daemon shuts down while a request waits 10 s (longer than the 5 s grace period): it is
    /// answered at once, CONSENT_UNAVAILABLE, instead of its connection being closed unanswered.
    @Test func shuttingDownAnswersWaitingRequests() async throws {
        let harness = try await DaemonHarness { $0.maximumSequenceWait = 10 }
        let client = try harness.client(timeout: 20)
        let waits = harness.daemon.state.sequenceWaits
        _ = try client.send(Self.check("gina", 1_000_000))
        try client.flush()
        #expect(PostgresDaemonTests.eventually { waits.waiting == 1 })
        let stopping = Task { try await harness.stop() }
        let response = try client.receive()
        guard case let .check(answer)? = response.result else {
            Issue.record("not a Check answer: \(response)")
            return
        }
        #expect(answer.decision == .deny && answer.reason == .consentUnavailable, "\(answer)")
        try await stopping.value
    }
}
