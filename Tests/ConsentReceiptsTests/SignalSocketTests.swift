import ConsentClient
import ConsentModel
@testable import ConsentReceipts
@testable import ConsentServer
import ConsentStore
import ConsentTesting
import ConsentWire
import Foundation
import Testing

/// Consent signal strings over a real socket: the banner's choice weighed against the stored
/// one, malformed strings answered INVALID_SIGNAL with a message while the daemon keeps serving,
/// and receipts that replay the strings exactly.
@Suite(.serialized) struct SignalSocketTests {
    /// Purposes 1-10 for vendors 12 and 999 (the shipped policies' tcf_vendor_id), LastUpdated 2026-05-01.
    static let grantAll = "CQjh0IAQjh0IAAHABBENBkEAAP_AAAAAAAYgHzgAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACAAAAA"
    /// The same without purpose 4 (a refusal of targeted ads).
    static let refusal = "CQjh0IAQjh0IAAHABBENBkEAAOKAAAAAAAYgHzgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACAAAAA"
    static let targeted = "marketing.advertising.targeted"

    func tc(_ string: String, jurisdiction: String = "DE", at: Timestamp? = nil) -> RequestContext {
        var context = RequestContext(jurisdiction: jurisdiction, at: at)
        context.tcString = string
        return context
    }

    @Test func theBannersChoiceAndTheStoredOneAreWeighedByTimeThroughTheSocket() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        // No stored choice: the banner's grant (2026-05-01) decides, on the fast path and with explain.
        for explain in [false, true] {
            let answer = try client.check(subject: "newcomer", purpose: Self.targeted, dataCategory: "user.behavior.browsing", context: tc(Self.grantAll), explain: explain)
            #expect(answer.decision == .allow && answer.reason == .consentGranted, "explain \(explain)")
            #expect(answer.consentRecord.source == "tcf" && answer.consentRecord.sequence == 0)
            #expect(answer.consentRecord.recordedAt.model == Timestamp(rfc3339: "2026-05-01T00:00:00Z"))
            #expect(answer.message.isEmpty)
        }
        // A withdrawal in the preference centre, after the banner's grant, wins.
        let withdrawal = try client.record([ConsentRecord(subject: "newcomer", purpose: "marketing", choice: .deny, recordedAt: Timestamp(rfc3339: "2026-06-01T00:00:00Z")!, source: "web")])
        let withdrawn = try client.check(subject: "newcomer", purpose: Self.targeted, dataCategory: "user.behavior.browsing", context: tc(Self.grantAll))
        #expect(withdrawn.reason == .consentDenied && withdrawn.consentRecord.sequence == withdrawal.sequences[0])
        // Decided at an instant before the withdrawal, the banner's grant stands.
        let before = try client.check(subject: "newcomer", purpose: Self.targeted, dataCategory: "user.behavior.browsing", context: tc(Self.grantAll, at: Timestamp(rfc3339: "2026-05-15T00:00:00Z")))
        #expect(before.reason == .consentGranted && before.consentRecord.source == "tcf")
        // The banner's no is a choice made now: it beats an older stored grant.
        _ = try client.record([ConsentRecord(subject: "alice", purpose: "marketing", choice: .grant, recordedAt: Timestamp(rfc3339: "2026-01-01T00:00:00Z")!, source: "web")])
        let refused = try client.check(subject: "alice", purpose: Self.targeted, dataCategory: "user.behavior.browsing", context: tc(Self.refusal))
        #expect(refused.reason == .consentDenied && refused.consentRecord.source == "tcf")
        // A batch shares the string; ListUses weighs it for every use.
        let batch = try client.checkBatch([("alice", Self.targeted, "user.behavior.browsing"), ("newcomer", "marketing.email", "user.contact.email"), ("fresh", Self.targeted, "user.behavior")], context: tc(Self.grantAll))
        #expect(batch.results.map(\.reason) == [.consentGranted, .consentDenied, .consentGranted])
        #expect(batch.message.isEmpty)
        let uses = try client.listUses(subject: "fresh", context: tc(Self.grantAll))
        #expect(uses.uses.contains { $0.purpose == Self.targeted && $0.dataCategory == "user.behavior.browsing" })
        let usesWithout = try client.listUses(subject: "fresh", context: RequestContext(jurisdiction: "DE"))
        #expect(!usesWithout.uses.contains { $0.purpose == Self.targeted })
        try await harness.stop()
    }

    @Test func malformedStringsAreAnsweredInvalidSignalAndTheDaemonKeepsServing() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        _ = try client.record([grant("alice", "marketing")])
        let malformed: [(RequestContext, String)] = {
            var cases: [(RequestContext, String)] = []
            cases.append((tc("CQjh0IAQjh0I"), "tc_string cannot be read"))
            cases.append((tc(String(repeating: "A", count: RequestContext.maximumSignalBytes + 1)), "tc_string cannot be read"))
            cases.append((tc("ü-not-base64"), "tc_string cannot be read"))
            var gpp = RequestContext(jurisdiction: "DE")
            gpp.gppString = "DBABMA~CQjh0"
            cases.append((gpp, "gpp_string cannot be read"))
            return cases
        }()
        for (context, expected) in malformed {
            for explain in [false, true] {
                let answer = try client.check(subject: "alice", purpose: Self.targeted, dataCategory: "user.behavior.browsing", context: context, explain: explain)
                #expect(answer.decision == .deny && answer.reason == .invalidSignal, "\(expected) explain \(explain)")
                #expect(answer.message.hasPrefix(expected), "\(answer.message)")
                #expect(answer.ruleID == "eea-targeted-ads")
                if explain { #expect(answer.explanation.text.contains("signals: \(expected)")) }
            }
            // A decision the string cannot affect is decided as usual, without a message.
            let essential = try client.check(subject: "alice", purpose: "service.essential", dataCategory: "user.contact.email", context: context)
            #expect(essential.reason == .legalBasis && essential.message.isEmpty)
            let batch = try client.checkBatch([("alice", Self.targeted, "user.behavior"), ("alice", "service.essential", "user.contact.email")], context: context)
            #expect(batch.results.map(\.reason) == [.invalidSignal, .legalBasis])
            #expect(batch.message.hasPrefix(expected))
            let uses = try client.listUses(subject: "alice", context: context)
            #expect(uses.message.hasPrefix(expected))
            #expect(!uses.uses.contains { $0.purpose == Self.targeted })
        }
        // Every string that cannot be read is named (review 23: only the first was, even when it
        // could not have affected the decision).
        var two = tc("CQjh0IAQjh0I")
        two.usPrivacy = "1YN"
        let both = try client.check(subject: "alice", purpose: Self.targeted, dataCategory: "user.behavior", context: two)
        #expect(both.reason == .invalidSignal && both.message.contains("tc_string cannot be read") && both.message.contains("us_privacy cannot be read"), "\(both.message)")
        // The message names the field and the bit offset.
        let short = try client.check(subject: "alice", purpose: Self.targeted, dataCategory: "user.behavior", context: tc("CQjh0IAQjh0I"))
        #expect(short.message.contains("bit"), "\(short.message)")
        // The connection and the daemon keep serving.
        #expect(try client.check(subject: "alice", purpose: Self.targeted, dataCategory: "user.behavior", context: RequestContext(jurisdiction: "DE")).reason == .consentGranted)
        #expect(try harness.client().status().counters.errors == 0)
        // Too many GPP section ids is a bad request, not a bad signal.
        var many = RequestContext(jurisdiction: "DE")
        many.gppString = "DBABMA~" + Self.grantAll
        many.gppSectionIds = Array(repeating: 2, count: RequestContext.maximumGPPSectionIds + 1)
        #expect(try client.check(subject: "alice", purpose: Self.targeted, dataCategory: "user.behavior", context: many).reason == .invalidRequest)
        try await harness.stop()
    }

    @Test func receiptsKeepTheStringsAndReplayReDecidesThem() async throws {
        for mode in [ReceiptConfiguration.SubjectMode.raw, .hash] {
            let receipts = "/tmp/cd-receipts-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: receipts) }
            let harness = try await DaemonHarness {
                $0.receipts.directory = receipts
                $0.receipts.subject = mode
            }
            let client = try harness.client()
            _ = try client.record([grant("alice", "marketing")])
            var contexts = [tc(Self.grantAll), tc(Self.refusal), tc("CQjh0IAQjh0I"), tc(Self.grantAll, jurisdiction: "US-CA")]
            var gpp = RequestContext(jurisdiction: "US-CA")
            gpp.gppString = "DBABLA~BVVaqqqqqqpk"
            gpp.gppSectionIds = [7, 7, 99]
            gpp.usPrivacy = "1YYN"
            contexts.append(gpp)
            var vendor = tc(Self.grantAll, jurisdiction: "FR")
            vendor.tcfVendorId = 13
            contexts.append(vendor)
            var asked = 0
            var requests = 0
            for context in contexts {
                for subject in ["alice", "newcomer"] {
                    for purpose in [Self.targeted, "marketing.advertising.measurement", "marketing.sale_or_sharing", "service.essential"] {
                        _ = try client.check(subject: subject, purpose: purpose, dataCategory: "user.behavior", context: context)
                        _ = try client.check(subject: subject, purpose: purpose, dataCategory: "user.behavior", context: context, explain: true)
                        asked += 2
                        requests += 2
                    }
                }
                let batch = try client.checkBatch([("alice", Self.targeted, "user.behavior"), ("newcomer", Self.targeted, "user.behavior")], context: context)
                asked += batch.results.count
                requests += 1
            }
            try await harness.stop(keepFiles: true)
            defer { try? FileManager.default.removeItem(at: harness.directory) }
            let allLines = ReceiptDirectory(path: receipts).lines
            let lines = allLines.filter { !$0.hasPrefix(#"{"signals":"#) }
            let signalLines = allLines.filter { $0.hasPrefix(#"{"signals":"#) }
            #expect(lines.count == asked)
            // One signals line per request, whatever its number of decisions.
            #expect(signalLines.count == requests, "\(signalLines.count) signals lines for \(requests) requests")
            #expect(lines.allSatisfy { $0.contains(#""signals":""#) })
            let store = try SQLiteConsentStore(path: harness.daemon.state.configuration.store)
            let report = try ReceiptReplayer(directory: receipts, store: store).run()
            #expect(report.mismatches.isEmpty, "\(report.mismatches.prefix(3))")
            switch mode {
            case .raw:
                #expect(signalLines.contains { $0.contains(#""tc_string":"\#(Self.grantAll)""#) })
                #expect(signalLines.contains { $0.contains(#""gpp_sid":[7],"gpp_sid_count":3"#) && $0.contains(#""us_privacy":"1YYN""#) })
                #expect(signalLines.contains { $0.contains(#""tcf_vendor_id":13"#) })
                #expect(report.matched == asked, "every receipt with signal strings is re-decided")
            default:
                // Hashed like the subject: the strings are not in the receipts, and replay says
                // it cannot re-decide them rather than guessing.
                #expect(!allLines.contains { $0.contains(Self.grantAll) })
                #expect(signalLines.contains { $0.contains(#""tc_string_sha256":""#) })
                #expect(report.unverifiable.count == asked)
                #expect(report.unverifiable.allSatisfy { $0.message.contains("SHA-256 of its signal strings") })
            }
        }
    }

    /// A batch's signal strings are written once, in its signals line, however many items it has
    /// (review 23: every item's receipt repeated three escaped 16 KiB strings, ~300 KB a line).
    @Test func aBatchsSignalStringsAreWrittenOnce() async throws {
        let receipts = "/tmp/cd-receipts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: receipts) }
        let harness = try await DaemonHarness {
            $0.receipts.directory = receipts
            $0.receipts.subject = .raw
        }
        let client = try harness.client()
        var context = RequestContext(jurisdiction: "DE")
        let worst = String(repeating: "\u{1}", count: RequestContext.maximumSignalBytes)  // escaped to six bytes each
        context.tcString = worst
        context.gppString = worst
        context.usPrivacy = worst
        let items = 1000
        let batch = try client.checkBatch(Array(repeating: ("alice", "service.essential", "user.contact.email"), count: items), context: context)
        #expect(batch.results.count == items && batch.results.allSatisfy { $0.reason == .legalBasis })
        // The counters count receipts, not the signals line (review 24).
        var written: UInt64 = 0
        for _ in 0..<50 where written < UInt64(items) {
            written = try client.status().counters.receiptsWritten
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(written == UInt64(items))
        // Too many section ids: every Check item is INVALID_REQUEST; ListUses says so.
        var many = RequestContext(jurisdiction: "DE")
        many.gppSectionIds = Array(repeating: 7, count: 100_000)
        #expect(try client.checkBatch([("alice", "service.essential", "user.contact.email")], context: many).results.first?.reason == .invalidRequest)
        #expect(throws: ConsentClientError.self) { try client.listUses(subject: "alice", context: many) }
        try await harness.stop(keepFiles: true)
        defer { try? FileManager.default.removeItem(at: harness.directory) }
        let all = ReceiptDirectory(path: receipts).lines
        let signalLines = all.filter { $0.hasPrefix(#"{"signals":"#) }
        #expect(signalLines.count == 2)
        #expect(all.count == items + 1 + 2)
        let bytes = all.reduce(0) { $0 + $1.utf8.count }
        #expect(bytes < 3 * 6 * RequestContext.maximumSignalBytes + items * 400, "\(bytes) bytes of receipts")
        let store = try SQLiteConsentStore(path: harness.daemon.state.configuration.store)
        let report = try ReceiptReplayer(directory: receipts, store: store).run()
        #expect(report.mismatches.isEmpty, "\(report.mismatches.prefix(3))")
        #expect(report.matched == items + 1)
    }

    /// RecordConsent with a signal: a CMP's choices synced into the store, as the records the
    /// string implies, with the string as evidence and its kind as source.
    @Test func aSignalStringIsStoredAsTheRecordsItImplies() async throws {
        let harness = try await DaemonHarness()
        let client = try harness.client()
        let synced = try client.record(signal: SignalConsent(subject: "synced", tcString: Self.grantAll, jurisdiction: "DE", noticeVersion: 3), idempotencyKey: "cmp-1")
        // Five purpose keys map to TCF purposes; each is granted, and precise location (special
        // feature 1, not opted in) is denied under each grant.
        #expect(synced.sequences.count == 10 && !synced.replayed)
        let history = try client.history(subject: "synced").records
        #expect(history.count == 10)
        #expect(history.allSatisfy { $0.source == "tcf" && $0.evidence == Self.grantAll && $0.jurisdiction == "DE" && $0.noticeVersion == 3 })
        #expect(history.allSatisfy { $0.recordedAt.model == Timestamp(rfc3339: "2026-05-01T00:00:00Z") })
        #expect(Set(history.filter { $0.choice == .grant && $0.dataCategory.isEmpty }.map(\.purpose)) == [
            "marketing.advertising.contextual", Self.targeted, "marketing.advertising.measurement", "personalization.content", "analytics.product",
        ])
        #expect(history.filter { $0.choice == .deny }.allSatisfy { $0.dataCategory == "user.location.precise" })
        // The stored choice now decides without the string.
        let check = try client.check(subject: "synced", purpose: Self.targeted, dataCategory: "user.behavior.browsing", context: RequestContext(jurisdiction: "DE"))
        #expect(check.reason == .consentGranted && check.consentRecord.source == "tcf" && check.consentRecord.sequence > 0)
        #expect(try client.check(subject: "synced", purpose: Self.targeted, dataCategory: "user.location.precise", context: RequestContext(jurisdiction: "DE")).decision == .deny)
        // Stored like any record: without the notice version, a rule's min_notice_version finds
        // it stale (review 24: stored records named "tcf" once skipped the rule — any writer's).
        _ = try client.record(signal: SignalConsent(subject: "unversioned", tcString: Self.grantAll))
        #expect(try client.check(subject: "unversioned", purpose: Self.targeted, dataCategory: "user.behavior.browsing", context: RequestContext(jurisdiction: "DE")).reason == .consentStale)
        _ = try client.record([ConsentRecord(subject: "handwritten", purpose: "marketing", choice: .grant, recordedAt: .now(), source: "tcf", noticeVersion: 1)])
        #expect(try client.check(subject: "handwritten", purpose: Self.targeted, dataCategory: "user.behavior.browsing", context: RequestContext(jurisdiction: "DE")).reason == .consentStale)
        // The same key again: replayed; with another string: refused.
        #expect(try client.record(signal: SignalConsent(subject: "synced", tcString: Self.grantAll, jurisdiction: "DE", noticeVersion: 3), idempotencyKey: "cmp-1").replayed)
        #expect(throws: ConsentClientError.self) { try client.record(signal: SignalConsent(subject: "synced", tcString: Self.refusal), idempotencyKey: "cmp-1") }
        // A refusal for another vendor is a deny for every mapped purpose.
        let refused = try client.record(signal: SignalConsent(subject: "other", tcString: Self.grantAll, tcfVendorId: 13))
        #expect(refused.sequences.count == 5)
        #expect(try client.history(subject: "other").records.allSatisfy { $0.choice == .deny && $0.dataCategory.isEmpty })
        // A US opt-out of sale is a deny, now, for each sale-or-sharing purpose; no opt-out stores nothing.
        let optOut = try client.record(signal: SignalConsent(subject: "ca", usPrivacy: "1YYN"))
        #expect(try client.history(subject: "ca").records.map(\.purpose).sorted() == [Self.targeted, "marketing.sale_or_sharing"].sorted())
        #expect(optOut.sequences.count == 2)
        #expect(try client.history(subject: "ca").records.allSatisfy { $0.choice == .deny && $0.source == "usp" })
        let nothing = try client.record(signal: SignalConsent(subject: "ca2", usPrivacy: "1YNN"), idempotencyKey: "cmp-2")
        #expect(nothing.sequences.isEmpty && !nothing.replayed)
        #expect(try client.history(subject: "ca2").records.isEmpty)
        // Storing nothing claims no key (review 25: a key with no records outlived the subject's
        // erasure, and its text may name the subject): the key stays free for the next write,
        // which stores exactly once under it. A malformed key is refused all the same.
        #expect(throws: ConsentClientError.self) { try client.record(signal: SignalConsent(subject: "ca2", usPrivacy: "1YNN"), idempotencyKey: "bad\u{1}key") }
        let optedOutLater = try client.record(signal: SignalConsent(subject: "ca2", usPrivacy: "1YYN"), idempotencyKey: "cmp-2")
        #expect(optedOutLater.sequences.count == 2 && !optedOutLater.replayed)
        #expect(try client.record(signal: SignalConsent(subject: "ca2", usPrivacy: "1YYN"), idempotencyKey: "cmp-2").replayed)
        #expect(throws: ConsentClientError.self) { try client.record([grant("ca2", "analytics")], idempotencyKey: "cmp-2") }
        #expect(try client.history(subject: "ca2").records.count == 2)
        let gpp = try client.record(signal: SignalConsent(subject: "ca3", gppString: "DBABLA~BVVaqqqqqqpk"))
        #expect(gpp.sequences.count == 2)
        #expect(try client.history(subject: "ca3").records.allSatisfy { $0.source == "gpp" })
        // Refused, storing nothing: malformed, two strings, none, a bad subject.
        for (signal, message) in [
            (SignalConsent(subject: "bad", tcString: "CQjh0IAQjh0I"), "signal: tc_string cannot be read"),
            (SignalConsent(subject: "bad", tcString: Self.grantAll, usPrivacy: "1YYN"), "give exactly one"),
            (SignalConsent(subject: "bad"), "give exactly one"),
            (SignalConsent(subject: "bad\u{0}", usPrivacy: "1YYN"), "signal: subject_id"),
            (SignalConsent(subject: "bad", tcString: Self.grantAll, tcfVendorId: 70_000), "is not a TCF vendor id"),
        ] {
            do {
                _ = try client.record(signal: signal)
                Issue.record("stored \(signal)")
            } catch let error as ConsentClientError {
                #expect(error.kind == .server(.invalidArgument) && error.message.contains(message), "\(error.message)")
            }
        }
        #expect(try client.history(subject: "bad").records.isEmpty)
        try await harness.stop()
    }
}
