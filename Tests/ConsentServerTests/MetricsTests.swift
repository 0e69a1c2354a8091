import ConsentClient
import ConsentModel
@testable import ConsentReceipts
@testable import ConsentServer
import ConsentStore
import ConsentTesting
import ConsentWire
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct MetricsTests {
    @Test func scrapedOverHTTPTheCountersMove() async throws {
        let receipts = "/tmp/cd-receipts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.metricsAddress = "127.0.0.1:0"
            $0.receipts.directory = receipts
        }
        let server = try #require(harness.daemon.metricsServer)
        let port = try #require(try await server.waitUntilListening().port)
        let (status0, before) = try httpGet(port: port, path: "/metrics")
        #expect(status0.hasPrefix("HTTP/1.1 200"))
        #expect(before.contains("consentd_policy_revision_info{revision=\"\(harness.daemon.state.policies.set.revision)\"} 1"))

        let client = try harness.client()
        _ = try client.record([grant("alice", measurement)])
        for _ in 0..<3 { _ = try client.check(subject: "alice", purpose: measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE")) }
        for _ in 0..<2 { _ = try client.check(subject: "bob", purpose: measurement, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE")) }
        _ = try client.check(subject: "bob", purpose: "no.such.purpose", dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE"))
        let raw = try RawConnection(harness.socket)
        raw.send([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        _ = raw.readToEnd()
        #expect(harness.daemon.reloader.reload())
        try await Task.sleep(for: .milliseconds(100))

        let (_, after) = try httpGet(port: port, path: "/metrics")
        #expect(sample(after, #"consentd_decisions_total{decision="allow",reason="CONSENT_GRANTED"}"#) == 3)
        #expect(sample(after, #"consentd_decisions_total{decision="deny",reason="NO_CONSENT"}"#) == 2)
        #expect(sample(after, #"consentd_decisions_total{decision="deny",reason="UNKNOWN_PURPOSE"}"#) == 1)
        #expect((sample(after, "consentd_request_duration_seconds_count") ?? 0) >= 7)
        #expect(sample(after, #"consentd_frames_rejected_total{cause="malformed"}"#) == 1)
        #expect(sample(after, #"consentd_policy_reloads_total{result="ok"}"#) == 1)
        #expect(sample(after, "consentd_consent_sequence") == 1)
        #expect(sample(after, "consentd_consent_index_subjects") == 1)
        #expect((sample(after, "consentd_connections_accepted_total") ?? 0) >= 2)
        #expect((sample(after, "consentd_receipts_written_total") ?? 0) + (sample(after, "consentd_receipts_queued") ?? 0) == 6)
        #expect(sample(after, "consentd_receipts_dropped_total") == 0)
        // Counters never go back: a second scrape with nothing new reads the same.
        let (_, again) = try httpGet(port: port, path: "/metrics")
        #expect(sample(again, #"consentd_decisions_total{decision="allow",reason="CONSENT_GRANTED"}"#) == 3)

        // Every use ListUses reports is a decision event like a Check's: counted in Status and the
        // metrics, and receipted, once each.
        let uses = try client.listUses(subject: "alice", context: RequestContext(jurisdiction: "DE")).uses.count
        #expect(uses > 0)
        let status = try client.status().counters
        let (_, latest) = try httpGet(port: port, path: "/metrics")
        #expect(status.decisions == UInt64(6 + uses))
        #expect(status.allowed == UInt64(3 + uses))
        let decisionSeries = latest.split(separator: "\n").filter { $0.hasPrefix("consentd_decisions_total{") }
        #expect(decisionSeries.compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +) == Double(status.decisions))
        #expect((sample(latest, "consentd_receipts_written_total") ?? 0) + (sample(latest, "consentd_receipts_queued") ?? 0) == Double(6 + uses))
        // Status and the exposition are built from one counter table: they agree on every counter both show.
        #expect(sample(latest, "consentd_requests_total") == Double(status.requests))
        #expect(sample(latest, "consentd_connections_accepted_total") == Double(status.connectionsAccepted))
        #expect(sample(latest, "consentd_connections_refused_total") == Double(status.connectionsRefused))
        #expect(sample(latest, "consentd_connections_idle_closed_total") == Double(status.connectionsIdleClosed))
        #expect(sample(latest, #"consentd_policy_reloads_total{result="ok"}"#) == Double(status.reloadsOk))
        #expect(sample(latest, #"consentd_policy_reloads_total{result="failed"}"#) == Double(status.reloadsFailed))
        #expect((sample(latest, #"consentd_frames_rejected_total{cause="malformed"}"#) ?? 0) + (sample(latest, #"consentd_frames_rejected_total{cause="too_large"}"#) ?? 0)
                == Double(status.framesRejected))

        let (notFound, _) = try httpGet(port: port, path: "/other")
        #expect(notFound.hasPrefix("HTTP/1.1 404"))
        #expect(try client.status().metricsAddress == "127.0.0.1:\(port)")
        try await harness.stop()
    }
}
