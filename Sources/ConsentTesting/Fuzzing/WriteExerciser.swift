import ConsentModel
import ConsentServer
import ConsentStore
import ConsentWire
import Foundation
import Logging
import SwiftProtobuf

/// Runs RecordConsent requests through the daemon's write path — validation, the store, the
/// index — and checks that what was acknowledged comes back whole: History returns every record
/// exactly as sent (subject bytes, keys, choice, times, basis, source, notice, jurisdiction,
/// evidence), the index holds it, a retry with the same idempotency key replays the same
/// sequences, and a refused write changes nothing. For the libFuzzer target `Fuzz/write`.
///
/// An input is a serialized `RecordConsentRequest`. Each input's subjects are erased afterwards,
/// so the store stays small and every input starts from the same state.
public final class WriteExerciser {
    let daemon: ConsentDaemon
    private var processor: RequestProcessor

    /// A daemon over `policies` with a fresh store in `scratch` (fsync off: fuzzing, not durability).
    public init(policies: String, scratch: String) throws {
        var configuration = ServerConfiguration()
        configuration.policies = policies
        configuration.store = scratch + "/write.sqlite"
        configuration.socket = scratch + "/write.sock"
        configuration.eventLoops = 1
        var logger = Logger(label: "consentd-fuzz-write")
        logger.logLevel = .critical
        daemon = try ConsentDaemon(configuration: configuration, logger: logger, synchronousCommits: false)
        processor = daemon.state.makeProcessor()
        processor.peer = PeerCredentials(pid: 1, uid: daemon.state.ownUID, gid: 0)
    }

    /// Stops the daemon's threads.
    public func close() { daemon.shutdownResources() }

    private func run(_ request: Consentd_V1_Request) -> Consentd_V1_Response {
        switch processor.process(request) {
        case let .respond(response): return response
        case let .respondFrame(frame): return (try? Consentd_V1_Response(frame: frame)) ?? Consentd_V1_Response()
        case let .offload(work): return work()
        case .waitForSequence: preconditionFailure("a write asked to wait for a sequence")
        }
    }

    /// Feeds one input.
    public func exercise(_ bytes: UnsafeRawBufferPointer) {
        guard let write = try? Consentd_V1_RecordConsentRequest(serializedBytes: RawBytes(bytes)) else { return }
        var request = Consentd_V1_Request()
        request.id = 1
        request.recordConsent = write
        let feed = daemon.state.feed
        let before = feed.appliedSequence
        let subjects = Array(Set(write.records.map { ExactString($0.subjectID) }))
        let historiesBefore = subjects.map { (try? feed.store.history(of: $0.value)) ?? [] }
        let sent = Timestamp.now()
        let response = run(request)
        let after = Timestamp.now()
        defer {
            for subject in subjects where Identifier.isValid(subject.value) { _ = try? feed.erase(subject: subject.value) }
        }
        guard case let .recordConsent(result)? = response.result else {
            // Refused: nothing changed, anywhere.
            precondition(response.error.code != .internal, "a write failed internally: \(response.error.message)")
            precondition(feed.appliedSequence == before && (try? feed.store.lastSequence()) == before, "a refused write moved the store")
            for (subject, history) in zip(subjects, historiesBefore) {
                precondition(((try? feed.store.history(of: subject.value)) ?? []) == history, "a refused write changed a history")
            }
            return
        }
        precondition(!result.replayed || !write.idempotencyKey.isEmpty, "replayed without a key")
        precondition(result.sequences.count == write.records.count, "one sequence per record")
        let snapshot = feed.index.snapshot()
        let vocabulary = daemon.state.vocabulary
        for (wire, sequence) in zip(write.records, result.sequences) {
            let history = (try? feed.store.history(of: wire.subjectID)) ?? []
            guard let stored = history.first(where: { $0.sequence == sequence }) else {
                preconditionFailure("an acknowledged record is not in its subject's history")
            }
            precondition(Array(stored.subject.utf8) == Array(wire.subjectID.utf8), "the subject came back with other bytes")
            precondition(Array(stored.purpose.utf8) == Array(wire.purpose.utf8), "the purpose came back changed")
            precondition(stored.dataCategory.map { Array($0.utf8) } == (wire.dataCategory.isEmpty ? nil : Array(wire.dataCategory.utf8)), "the data scope came back changed")
            precondition(stored.choice == wire.choice.model, "the choice came back changed")
            if wire.hasRecordedAt {
                precondition(stored.recordedAt == wire.recordedAt.validatedModel, "recorded_at came back changed")
            } else {
                precondition(stored.recordedAt >= sent && stored.recordedAt <= after, "a defaulted recorded_at is not the time of the write")
            }
            precondition(stored.expiresAt == (wire.hasExpiresAt ? wire.expiresAt.validatedModel : nil), "expires_at came back changed")
            precondition(stored.legalBasis == wire.legalBasis.model, "the legal basis came back changed")
            precondition(Array(stored.source.utf8) == Array((wire.source.isEmpty ? "api" : wire.source).utf8), "the source came back changed")
            precondition(stored.noticeVersion == (wire.hasNoticeVersion ? wire.noticeVersion : nil), "the notice version came back changed")
            precondition(stored.jurisdiction.map { Array($0.utf8) } == (wire.jurisdiction.isEmpty ? nil : Array(wire.jurisdiction.utf8)), "the jurisdiction came back changed")
            precondition(stored.evidence.map { Array($0.utf8) } == (wire.evidence.isEmpty ? nil : Array(wire.evidence.utf8)), "the evidence came back changed")
            // The index holds it, under exactly these subject bytes.
            let indexed = snapshot.records(of: wire.subjectID).first { $0.sequence == sequence }
            precondition(indexed == stored.compact(in: vocabulary), "the index does not hold the record as stored")
        }
        // A retry with the same key and payload replays the same sequences and stores nothing.
        if !write.idempotencyKey.isEmpty {
            let head = feed.appliedSequence
            let again = run(request)
            precondition(again.recordConsent.replayed && again.recordConsent.sequences == result.sequences, "a retry was not replayed")
            precondition(feed.appliedSequence == head, "a replayed retry stored something")
        }
    }
}
