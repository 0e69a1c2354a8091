import ConsentClient
import ConsentModel
import ConsentServer
import ConsentTesting
import ConsentWire
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct SocketServerTests {
    @Test func pipelinedRequestsAreAllAnsweredAndMatchedById() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        _ = try client.record([grant("alice", "marketing.advertising.targeted")])
        let purposes = ["marketing.advertising.targeted", "service.essential", "analytics.product", "marketing.nope"]
        var expected: [UInt64: (String, String)] = [:]
        for id in 1...600 as ClosedRange<UInt64> {
            if id % 100 == 0 {
                try client.send(request(id) { $0.status = Consentd_V1_StatusRequest() })
            } else {
                let subject = id % 3 == 0 ? "alice" : "bob"
                let purpose = purposes[Int(id) % purposes.count]
                try client.send(checkRequest(id, subject, purpose, "user.behavior"))
                expected[id] = (subject, purpose)
            }
        }
        try client.flush()
        var responses: [UInt64: Consentd_V1_Response] = [:]
        for _ in 0..<600 {
            let response = try client.receive()
            #expect(responses[response.id] == nil, "id \(response.id) answered twice")
            responses[response.id] = response
        }
        #expect(responses.count == 600)
        let reference = try harness.client()
        for (id, (subject, purpose)) in expected {
            guard case let .check(answer)? = responses[id]?.result else { Issue.record("id \(id) got \(String(describing: responses[id]))"); continue }
            let single = try reference.check(subject: subject, purpose: purpose, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE"))
            #expect(answer.reason == single.reason, "id \(id)")
            #expect(answer.ruleID == single.ruleID)
        }
        for id in stride(from: 100, through: 600, by: 100) {
            guard case .status? = responses[UInt64(id)]?.result else { Issue.record("status \(id) missing"); continue }
        }
        #expect(responses[12]?.check.reason == .consentGranted)
        #expect(responses[3]?.check.reason == .unknownPurpose)
        #expect(responses[4]?.check.reason == .noConsent)
        #expect(responses[5]?.check.reason == .legalBasis)
        #expect(responses[6]?.check.reason == .noConsent)
        try await harness.stop()
    }

    @Test func manyConcurrentConnectionsAreServed() async throws {
        let harness = try await DaemonHarness()
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 32) { index in
            do {
                let client = try harness.client()
                for round in 0..<100 {
                    let answer = try client.check(subject: "s\(index)", purpose: "service.essential", dataCategory: "user.contact.email", context: RequestContext(jurisdiction: round % 2 == 0 ? "FR" : "US-CA"))
                    if answer.reason != .legalBasis { failures.withLock { $0 += 1 } }
                }
            } catch {
                failures.withLock { $0 += 1 }
            }
        }
        #expect(failures.withLock { $0 } == 0)
        let status = try harness.client().status()
        #expect(status.counters.connectionsAccepted >= 33)
        #expect(status.counters.decisions == 3200)
        try await harness.stop()
    }

    @Test func aWithdrawalThroughTheSocketFlipsTheVeryNextCheck() async throws {
        let harness = try await DaemonHarness()
        let admin = try harness.client()
        let checker = try harness.client()
        let context = RequestContext(jurisdiction: "DE")
        #expect(try checker.check(subject: "carol", purpose: "marketing.advertising.targeted", dataCategory: "user.behavior.browsing", context: context).reason == .noConsent)
        let granted = try admin.record([grant("carol", "marketing.advertising.targeted")])
        let allowed = try checker.check(subject: "carol", purpose: "marketing.advertising.targeted", dataCategory: "user.behavior.browsing", context: context)
        #expect(allowed.decision == .allow)
        #expect(allowed.consentRecord.sequence == granted.sequences[0])
        #expect(allowed.consentSequence >= granted.consentSequence)
        _ = try admin.record([grant("carol", "marketing", .deny)])
        let denied = try checker.check(subject: "carol", purpose: "marketing.advertising.targeted", dataCategory: "user.behavior.browsing", context: context)
        #expect(denied.decision == .deny)
        #expect(denied.reason == .consentDenied)
        #expect(denied.ruleID == "eea-targeted-ads")
        // And the same for erasure.
        _ = try admin.erase(subject: "carol")
        #expect(try checker.check(subject: "carol", purpose: "marketing.advertising.targeted", dataCategory: "user.behavior.browsing", context: context).reason == .noConsent)
        try await harness.stop()
    }

    /// A `min_sequence` this daemon never reaches: the request waits about --max-sequence-wait
    /// (not blocking the connection's event loop: another connection is answered meanwhile),
    /// then what needs consent is CONSENT_UNAVAILABLE with a message and what needs none is
    /// answered; a reached `min_sequence` answers at once, on the allocation-free path too.
    @Test func aMinSequenceNotReachedWaitsItsBoundThenFailsClosed() async throws {
        let harness = try await DaemonHarness { $0.maximumSequenceWait = 0.3 }
        let admin = try harness.client()
        let granted = try admin.record([grant("dora", "marketing.advertising.targeted")]).sequences[0]
        var context = RequestContext(jurisdiction: "DE")
        context.minSequence = granted
        #expect(try admin.check(subject: "dora", purpose: "marketing.advertising.targeted", dataCategory: "user.behavior.browsing", context: context).reason == .consentGranted)
        context.minSequence = granted + 1_000
        let waiter = try harness.client()
        let other = try harness.client()
        let started = Date()
        let waiting = Task { try waiter.check(subject: "dora", purpose: "marketing.advertising.targeted", dataCategory: "user.behavior.browsing", context: context) }
        usleep(50_000)
        // Meanwhile another connection is answered at once.
        let quick = Date()
        #expect(try other.check(subject: "dora", purpose: "marketing.advertising.targeted", dataCategory: "user.behavior.browsing", context: RequestContext(jurisdiction: "DE")).reason == .consentGranted)
        #expect(Date().timeIntervalSince(quick) < 0.25, "a waiting request held up another connection")
        let answer = try await waiting.value
        #expect(Date().timeIntervalSince(started) >= 0.3)
        #expect(answer.decision == .deny && answer.reason == .consentUnavailable)
        #expect(answer.message.contains("context.min_sequence \(granted + 1_000) is not applied"), "\(answer.message)")
        let batch = try waiter.checkBatch([("dora", "marketing.advertising.targeted", "user.behavior.browsing"), ("dora", "service.essential", "user")], context: context)
        #expect(batch.results.map(\.reason) == [.consentUnavailable, .legalBasis])
        let uses = try waiter.listUses(subject: "dora", context: context)
        #expect(!uses.uses.contains { $0.purpose == "marketing.advertising.targeted" } && uses.message.contains("not listed"))
        try await harness.stop()
    }

    @Test func idempotentWritesAndBadRecordsThroughTheSocket() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        let request = [grant("dave", "analytics")]
        let first = try client.record(request, idempotencyKey: "k1")
        let again = try client.record(request, idempotencyKey: "k1")
        #expect(again.replayed)
        #expect(again.sequences == first.sequences)
        // The same key for a different request is an error that says so, not a silent replay.
        #expect {
            _ = try client.record([grant("dave", "analytics", .deny)], idempotencyKey: "k1")
        } throws: { error in
            "\(error)".contains("used before for a different request")
        }
        #expect(throws: ConsentClientError.self) { try client.record([grant("dave", "analytics.nope")]) }
        do {
            _ = try client.record([grant("dave", "analytics.nope")])
        } catch let error as ConsentClientError {
            #expect(error.kind == .server(.invalidArgument))
            #expect(error.message.contains("purpose 'analytics.nope' is not in the policy taxonomy"))
        }
        // The daemon and consentctl check record keys with one rule and one "did you mean".
        do {
            _ = try client.record([grant("dave", "analytics"), grant("dave", "marketing.emial")])
            Issue.record("a misspelt purpose was stored")
        } catch let error as ConsentClientError {
            #expect(error.message == "records[1]: purpose 'marketing.emial' is not in the policy taxonomy; did you mean 'marketing.email'?")
        }
        // A refused write names the record at fault, and every refusal — decided inline or on the
        // blocking pool — is counted once, in one place.
        let errorsBefore = try client.status().counters.errors
        do {
            _ = try client.record([grant("dave", "analytics"), grant("dave\u{1}", "analytics")])
            Issue.record("a subject with a control character was stored")
        } catch let error as ConsentClientError {
            #expect(error.message.hasPrefix("records[1]: subject_id "), "\(error.message)")
        }
        #expect(throws: ConsentClientError.self) { try client.history(subject: "") }
        #expect(throws: ConsentClientError.self) { try client.erase(subject: "a\u{0}b") }
        #expect(try client.status().counters.errors == errorsBefore + 3)
        #expect(try client.history(subject: "dave").records.count == 1)
        try await harness.stop()
    }

    @Test func checkBatchAndListUses() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        _ = try client.record([grant("erin", "marketing")])
        let batch = try client.checkBatch([
            ("erin", "marketing.email", "user.contact.email"),
            ("frank", "marketing.email", "user.contact.email"),
            ("erin", "marketing.advertising.targeted", "user.health"),
        ], context: RequestContext(jurisdiction: "IE"))
        #expect(batch.results.map(\.reason) == [.consentGranted, .noConsent, .prohibited])
        #expect(batch.results[0].consentRecordSequence == 1)
        #expect(!batch.policyRevision.isEmpty)
        let uses = try client.listUses(subject: "erin", context: RequestContext(jurisdiction: "IE"))
        #expect(uses.uses.contains { $0.purpose == "marketing.email" && $0.dataCategory == "user.contact.email" && $0.reason == .consentGranted })
        #expect(uses.uses.contains { $0.purpose == "service.essential" && $0.reason == .legalBasis })
        #expect(!uses.uses.contains { $0.dataCategory == "user.health" && $0.purpose.hasPrefix("marketing") })
        #expect(!uses.uses.contains { $0.purpose == "analytics.product" })
        try await harness.stop()
    }
}
