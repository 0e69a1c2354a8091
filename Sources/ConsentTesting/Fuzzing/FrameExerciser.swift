import ConsentModel
import ConsentReceipts
import ConsentServer
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
/// Besides not crashing, it checks properties on every frame: when the fast path answers a
/// Check or CheckBatch, the general path's answer to the same request is the same frame, byte
/// for byte; every encoded answer is a frame SwiftProtobuf reads and writes back unchanged; a
/// check-role peer's explain carries no record trace.
///
/// The first byte of an input picks the peer: even, an admin; odd, a peer with the check role
/// only. The store holds records at boundary instants (the epoch and its neighbours, the ends
/// of the valid range, expiring ones) for subjects whose ids are byte-different spellings of
/// one name, so decisions, explains and receipts meet them.
public final class FrameExerciser {
    let daemon: ConsentDaemon
    private var admin: RequestProcessor
    private var checker: RequestProcessor
    private let allocator = ByteBufferAllocator()

    /// The subjects the store is seeded with.
    public static let seededSubjects = ["a", "b", "e", "jos\u{E9}", "jose\u{301}", "\u{212B}", "\u{C5}", "victim", "v2"]

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
        let data = daemon.state.policies.set.dataCategories.leaves
        if daemon.state.feed.index.snapshot().recordCount == 0 {
            var records: [ConsentRecord] = []
            for (index, purpose) in purposes.enumerated() {
                records.append(ConsentRecord(subject: "a", purpose: purpose, choice: .grant, recordedAt: now, source: "fuzz", noticeVersion: 3))
                records.append(ConsentRecord(subject: "b", purpose: purpose, choice: index % 2 == 0 ? .deny : .grant, recordedAt: now, source: "fuzz", noticeVersion: 1))
            }
            // Boundary instants, relied on by decisions (the epoch answer once broke the frame).
            let instants: [Int64] = [0, 1, -1, 999_999, -999_999, 1_000_000, -1_000_000, Timestamp.minimumValid.microseconds, Timestamp.minimumValid.microseconds + 1]
            for (index, subject) in Self.seededSubjects.dropFirst(2).enumerated() {
                for (offset, micros) in instants.enumerated() {
                    let purpose = purposes[(index + offset) % purposes.count]
                    records.append(ConsentRecord(
                        subject: subject, purpose: purpose, dataCategory: offset % 3 == 0 ? data[offset % data.count] : nil,
                        choice: (index + offset) % 2 == 0 ? .grant : .deny, recordedAt: Timestamp(microseconds: micros),
                        expiresAt: offset % 2 == 0 ? Timestamp.maximumValid : nil, source: offset % 2 == 0 ? "fuzz" : "web",
                        noticeVersion: offset % 4 == 0 ? nil : UInt32(offset)
                    ))
                }
            }
            _ = try daemon.state.feed.record(records, idempotencyKey: nil, now: now)
        }
        admin = daemon.state.makeProcessor()
        admin.peer = PeerCredentials(pid: 1, uid: daemon.state.ownUID, gid: 0)
        checker = daemon.state.makeProcessor()
        checker.peer = PeerCredentials(pid: 2, uid: 4_000_000_000, gid: 4_000_000_000)
        // One instant for both paths: a TC string's refusal is recorded at the decision's instant,
        // and the two paths answer the same frame at different moments.
        admin.pinnedNow = now
        checker.pinnedNow = now
        precondition(checker.roles.check && !checker.roles.admin, "the fuzz checker must have the check role only")
    }

    /// Feeds `bytes` as one connection's stream; returns how many frames were answered.
    @discardableResult
    public func exercise(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let first = bytes.first else { return 0 }
        let asChecker = first & 1 == 1
        let bytes = UnsafeRawBufferPointer(rebasing: bytes[1...])
        var offset = 0
        var answered = 0
        let limit = daemon.state.configuration.maximumFrameSize
        while offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            guard case let .length(length, prefixBytes) = FrameCodec.readPrefix(rest) else { break } // incomplete or malformed: the connection would close
            guard length <= UInt64(limit), rest.count - prefixBytes >= Int(length) else { break }
            let frame = UnsafeRawBufferPointer(rebasing: rest[prefixBytes..<(prefixBytes + Int(length))])
            offset += prefixBytes + Int(length)
            if asChecker { answer(frame, with: &checker, isAdmin: false) } else { answer(frame, with: &admin, isAdmin: true) }
            answered += 1
        }
        for processor in [admin, checker] {
            guard let lines = processor.pendingReceipts else { continue }
            // Every line the encoder wrote must be one JSON object line with no raw control bytes.
            var start = 0
            for end in lines.ends {
                let line = UnsafeRawBufferPointer(rebasing: lines.bytes[start..<end])
                precondition(line.first == UInt8(ascii: "{") && line.last == UInt8(ascii: "\n") && line.dropLast().last == UInt8(ascii: "}"), "a receipt line is not one JSON object")
                precondition(!line.dropLast().contains { $0 < 0x20 }, "a receipt line carries a raw control byte")
                precondition(line.count <= ReceiptSchema.maximumLineBytes, "a receipt line is larger than its capped fields allow")
                start = end
            }
        }
        admin.flushReceipts()
        checker.flushReceipts()
        return answered
    }

    private func answer(_ frame: UnsafeRawBufferPointer, with processor: inout RequestProcessor, isAdmin: Bool) {
        // The shape check runs on every frame, as the handler runs it.
        if let refusal = processor.refuseOversized(frame) {
            precondition(refusal.error.code == .invalidArgument || refusal.error.code == .unknownField)
            return
        }
        var fast = allocator.buffer(capacity: 256)
        let answeredFast = processor.fastCheck(frame, into: &fast) || processor.fastBatch(frame, into: &fast)
        let request: Consentd_V1_Request
        do {
            request = try Consentd_V1_Request(serializedBytes: RawBytes(frame))
        } catch {
            // Both paths must refuse what the decoder refuses.
            precondition(!answeredFast, "the fast path answered a frame that is not a Request")
            _ = processor.refuseInvalidUTF8(frame, error)
            return
        }
        let general: Consentd_V1_Response
        let generalFrame: [UInt8]
        var outcome = processor.process(request)
        if case .waitForSequence = outcome {
            // The index has not reached the request's min_sequence: nothing may have answered it
            // from the index yet; once the wait is over, the answer is the general path's.
            precondition(!answeredFast, "the fast path answered a request whose min_sequence the index has not reached")
            outcome = processor.resume(request)
        }
        switch outcome {
        case .waitForSequence:
            preconditionFailure("a resumed request asked to wait again")
        case let .respond(response):
            general = response
            generalFrame = FrameCodec.frame((try? response.serializedBytes()) ?? [])
        case let .respondFrame(frame):
            // An answer written by AnswerWriter must be one frame that SwiftProtobuf — an
            // encoder sharing no code with it — reads and writes back byte for byte.
            guard let decoded = try? Consentd_V1_Response(frame: frame) else { preconditionFailure("the general path wrote an unreadable frame") }
            precondition(FrameCodec.frame((try? decoded.serializedBytes()) ?? []) == frame, "SwiftProtobuf writes this answer differently: \(decoded)")
            general = decoded
            generalFrame = frame
        case .offload:
            // Consent administration stops at the hand-off to the blocking pool: what runs there
            // is SQLite, which would dominate every execution (and writes would grow the store).
            return
        }
        if !isAdmin, case let .check(check)? = general.result {
            precondition(check.explanation.records.isEmpty, "a check-role peer's explain disclosed record traces")
        }
        guard answeredFast else { return }
        // The fast path's answer must be the general path's, byte for byte.
        let fastFrame = Array(fast.readableBytesView)
        precondition(fastFrame == generalFrame, "fast and general paths answer differently: \((try? Consentd_V1_Response(frame: fastFrame)).map { "\($0)" } ?? "an unreadable frame") vs \(general)")
    }

    /// Stops the daemon's threads.
    public func close() { daemon.shutdownResources() }
}

