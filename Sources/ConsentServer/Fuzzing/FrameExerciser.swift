import ConsentModel
import ConsentStore
import ConsentWire
import Foundation
import Logging
import NIOCore
import PolicyEngine
import SwiftProtobuf

/// Runs a byte stream through the daemon's request path without a socket: the frame decoder's
/// rules, the allocation-free fast paths, the general decoder and the request processor, exactly
/// as a connection would. For the libFuzzer target (`Fuzz/frames`) and its regression tests.
///
/// Besides not crashing, it checks one property on every frame: when the fast path answers a
/// Check or CheckBatch, the general path must answer the same request with the same decisions.
public final class FrameExerciser {
    let daemon: ConsentDaemon
    private var processor: RequestProcessor
    private let allocator = ByteBufferAllocator()

    /// A daemon over `policies` with a fresh store in `scratch` holding a few subjects.
    public init(policies: String, scratch: String) throws {
        var configuration = ServerConfiguration()
        configuration.policies = policies
        configuration.store = scratch + "/fuzz.sqlite"
        configuration.socket = scratch + "/fuzz.sock"
        configuration.eventLoops = 1
        configuration.maximumBatchItems = 64
        // Receipts on, so every decision's receipt is encoded from the fuzzed bytes (the writer
        // never runs here: the queue fills and the rest is counted as dropped).
        configuration.receipts.directory = scratch + "/receipts"
        configuration.receipts.queueCapacity = 16
        var logger = Logger(label: "consentd-fuzz")
        logger.logLevel = .critical
        daemon = try ConsentDaemon(configuration: configuration, logger: logger)
        let now = Timestamp.now()
        let purposes = daemon.state.policies.set.purposes.leaves
        if daemon.state.feed.index.snapshot().recordCount == 0 {
            var records: [ConsentRecord] = []
            for (index, purpose) in purposes.enumerated() {
                records.append(ConsentRecord(subject: "a", purpose: purpose, choice: .grant, recordedAt: now, source: "fuzz", noticeVersion: 3))
                records.append(ConsentRecord(subject: "b", purpose: purpose, choice: index % 2 == 0 ? .deny : .grant, recordedAt: now, source: "fuzz", noticeVersion: 1))
            }
            _ = try daemon.state.feed.record(records, idempotencyKey: nil, now: now)
        }
        processor = RequestProcessor(state: daemon.state)
        processor.peer = PeerCredentials(pid: 1, uid: daemon.state.ownUID, gid: 0)
    }

    /// Feeds `bytes` as one connection's stream; returns how many frames were answered.
    @discardableResult
    public func exercise(_ bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        var answered = 0
        let limit = daemon.state.configuration.maximumFrameSize
        while offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            guard case let .length(length, prefixBytes) = FrameCodec.readPrefix(rest) else { break } // incomplete or malformed: the connection would close
            guard length <= UInt64(limit), rest.count - prefixBytes >= Int(length) else { break }
            let frame = UnsafeRawBufferPointer(rebasing: rest[prefixBytes..<(prefixBytes + Int(length))])
            offset += prefixBytes + Int(length)
            answer(frame)
            answered += 1
        }
        if let lines = processor.pendingReceipts {
            // Every line the encoder wrote must be one JSON object line with no raw control bytes.
            var start = 0
            for end in lines.ends {
                let line = UnsafeRawBufferPointer(rebasing: lines.bytes[start..<end])
                precondition(line.first == UInt8(ascii: "{") && line.last == UInt8(ascii: "\n") && line.dropLast().last == UInt8(ascii: "}"), "a receipt line is not one JSON object")
                precondition(!line.dropLast().contains { $0 < 0x20 }, "a receipt line carries a raw control byte")
                start = end
            }
        }
        processor.flushReceipts()
        return answered
    }

    private func answer(_ frame: UnsafeRawBufferPointer) {
        var fast = allocator.buffer(capacity: 256)
        let answeredFast = processor.fastCheck(frame, into: &fast) || processor.fastBatch(frame, into: &fast)
        guard let request = try? Consentd_V1_Request(serializedBytes: RawBytes(frame)) else {
            // Both paths must refuse what the decoder refuses.
            precondition(!answeredFast, "the fast path answered a frame that is not a Request")
            return
        }
        let general: Consentd_V1_Response
        switch processor.process(request) {
        case let .respond(response):
            general = response
        case .offload:
            // Consent administration stops at the hand-off to the blocking pool: what runs there
            // is SQLite, which would dominate every execution (and writes would grow the store).
            return
        }
        _ = try? general.serializedBytes() as [UInt8]
        guard answeredFast else { return }
        // The fast path's answer must say what the general path says.
        let fastResponse = fast.withUnsafeReadableBytes { bytes -> Consentd_V1_Response? in
            guard case let .length(length, prefixBytes) = FrameCodec.readPrefix(bytes), bytes.count == prefixBytes + Int(length) else { return nil }
            return try? Consentd_V1_Response(serializedBytes: RawBytes(UnsafeRawBufferPointer(rebasing: bytes[prefixBytes...])))
        }
        guard let fastResponse else { preconditionFailure("the fast path wrote an unreadable frame") }
        precondition(fastResponse.id == general.id, "fast and general paths answer different ids: \(fastResponse.id) vs \(general.id)")
        switch (fastResponse.result, general.result) {
        case let (.check(a)?, .check(b)?):
            precondition(a.decision == b.decision && a.reason == b.reason && a.ruleID == b.ruleID
                && a.consentRecord.sequence == b.consentRecord.sequence && a.obligations == b.obligations,
                "fast and general Check differ: \(a) vs \(b)")
        case let (.checkBatch(a)?, .checkBatch(b)?):
            precondition(a.results.count == b.results.count, "batch sizes differ")
            for (x, y) in zip(a.results, b.results) {
                precondition(x.decision == y.decision && x.reason == y.reason && x.ruleID == y.ruleID
                    && x.consentRecordSequence == y.consentRecordSequence, "fast and general batch items differ: \(x) vs \(y)")
            }
        default:
            preconditionFailure("fast and general paths answer different kinds: \(String(describing: fastResponse.result)) vs \(String(describing: general.result))")
        }
    }

    /// Stops the daemon's threads.
    public func close() { daemon.shutdownResources() }
}

