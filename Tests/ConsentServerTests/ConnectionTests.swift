import ConsentModel
@testable import ConsentServer
import ConsentStore
import ConsentTesting
import ConsentTransport
import ConsentWire
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import PolicyEngine
import SwiftProtobuf
import Testing

/// A request processor's services over the shipped policies and an index built in memory: no
/// SQLite file, no socket, no daemon.
func memoryServices(
    _ records: [ConsentRecord] = [], ownUID: UInt32 = 4_000, configure: (inout ServerConfiguration) -> Void = { _ in }
) throws -> RequestServices {
    let vocabulary = Vocabulary()
    let compiled = try PolicyDirectory.compile(DaemonHarness.shippedPolicies.path, vocabulary: vocabulary)
    let set = try #require(compiled.result.policySet)
    let index = ConsentIndex(vocabulary: vocabulary)
    let changes = records.enumerated().map { offset, record -> ConsentChange in
        var record = record
        record.sequence = UInt64(offset + 1)
        return .record(subject: record.subject, record.compact(in: vocabulary))
    }
    index.apply(changes, through: UInt64(records.count))
    var configuration = ServerConfiguration()
    configure(&configuration)
    var logger = Logger(label: "consentd-test")
    logger.logLevel = .critical
    return RequestServices(
        policies: PolicyHolder(set, at: .now(), milliseconds: 0), consent: index, store: nil,
        roleMap: RoleMap(configuration: configuration, ownUID: ownUID), maximumBatchItems: configuration.maximumBatchItems,
        status: { Consentd_V1_StatusResponse.with { $0.version = "in-memory" } }, logger: logger
    )
}

/// The request processor decides from what it is given, without SQLite or a socket.
@Suite struct InMemoryProcessorTests {
    @Test func decidesFromAnIndexBuiltInMemory() throws {
        let services = try memoryServices([grant("alice", "marketing.advertising.targeted"), grant("bob", "marketing", .deny)])
        var processor = RequestProcessor(services: services, connection: 1)
        let alice = try #require(processor.process(checkRequest(1, "alice", "marketing.advertising.targeted", "user.behavior.browsing")).response)
        #expect(alice.id == 1)
        #expect(alice.check.decision == .allow)
        #expect(alice.check.reason == .consentGranted)
        #expect(alice.check.consentSequence == 2)
        let bob = try #require(processor.process(checkRequest(2, "bob", "marketing.advertising.targeted", "user.behavior.browsing")).response)
        #expect(bob.check.decision == .deny)
        #expect(bob.check.reason == .consentDenied)
        #expect(services.counters.decisions.load(ordering: .relaxed) == 2)
        #expect(services.counters.allowed.load(ordering: .relaxed) == 1)
    }

    @Test func statusIsTheDaemonsWithTheCallersRoles() throws {
        var processor = RequestProcessor(services: try memoryServices(ownUID: 4_000), connection: 1)
        processor.peer = PeerCredentials(pid: 1, uid: 4_000, gid: 1)
        let status = try #require(processor.process(request(3) { $0.status = .init() }).response)
        #expect(status.status.version == "in-memory")
        #expect(status.status.callerRoles == ["check", "admin"])
    }

    /// Without a store, consent administration is refused as unavailable, with a reason, and
    /// counted as an error; it is never answered as if it had been done.
    @Test func administrationWithoutAStoreIsRefusedAsUnavailable() throws {
        let services = try memoryServices(ownUID: 4_000)
        var processor = RequestProcessor(services: services, connection: 1)
        processor.peer = PeerCredentials(pid: 1, uid: 4_000, gid: 1)
        let requests = [
            request(4) { $0.recordConsent.records = [Consentd_V1_ConsentRecord.with { $0.subjectID = "a"; $0.purpose = "analytics"; $0.choice = .grant }] },
            request(5) { $0.history.subjectID = "a" },
            request(6) { $0.eraseSubject.subjectID = "a" },
        ]
        for request in requests {
            let answer = try #require(processor.process(request).response, "answered inline")
            #expect(answer.id == request.id)
            #expect(answer.error.code == .unavailable)
            #expect(answer.error.message.contains("no consent store"))
        }
        #expect(services.counters.errors.load(ordering: .relaxed) == 3)
    }
}

/// Each transition of a connection's life, without I/O.
@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine

    @Test func readsWhileThereIsRoomAndOwesAReadOtherwise() {
        var machine = Machine(maximumInFlight: 2)
        #expect(machine.read(.init()) == .read)
        #expect(machine.read(.init(writable: false)) == .hold)
        #expect(machine.readPending)
        // Still not writable: the owed read stays owed.
        #expect(machine.resume(.init(writable: false)) == .hold)
        #expect(machine.readPending)
        // A whole frame waiting for room: no read either (input is bounded by one frame).
        #expect(machine.resume(.init(frameWaiting: true)) == .hold)
        #expect(machine.resume(.init()) == .read)
        #expect(!machine.readPending)
        // Nothing owed: resuming reads nothing.
        #expect(machine.resume(.init()) == .hold)
    }

    @Test func congestedReceiptsHoldReadingUntilTheQueueHasRoom() {
        var machine = Machine(maximumInFlight: 2)
        #expect(machine.read(.init(receiptsCongested: true)) == .waitForReceipts)
        #expect(machine.resume(.init(receiptsCongested: true)) == .waitForReceipts)
        #expect(machine.readPending)
        #expect(machine.resume(.init()) == .read)
        #expect(machine.frameRoom(.init(receiptsCongested: true)) == .stop)
    }

    @Test func requestsInFlightAreBounded() {
        var machine = Machine(maximumInFlight: 2)
        machine.offloadStarted()
        #expect(machine.read(.init()) == .read)
        machine.offloadStarted()
        #expect(machine.read(.init()) == .hold)
        #expect(machine.resume(.init()) == .hold)
        machine.offloadFinished()
        #expect(machine.resume(.init()) == .read)
        #expect(machine.inFlight == 1)
    }

    @Test func framesAreTakenWhileAnswersHaveRoom() {
        var machine = Machine(maximumInFlight: 2)
        #expect(machine.frameRoom(.init()) == .take)
        #expect(machine.frameRoom(.init(answersOverBudget: true)) == .flushFirst)
        machine.close()
        #expect(machine.frameRoom(.init()) == .stop)
    }

    @Test func aHalfClosedConnectionClosesOnceEverythingIsAnswered() {
        var machine = Machine(maximumInFlight: 4)
        // Not half-closed: nothing to finish.
        #expect(machine.finish(leftover: nil, wholeFrameWaiting: false) == .none)
        machine.offloadStarted()
        machine.peerHalfClosed()
        // An answer is still coming from the blocking pool.
        #expect(machine.finish(leftover: nil, wholeFrameWaiting: false) == .none)
        machine.offloadFinished()
        #expect(machine.finish(leftover: nil, wholeFrameWaiting: false) == .close)
        #expect(machine.isClosing)
        // Closing: no more input, frames, reads or rejections.
        #expect(machine.bytesRead() == false)
        #expect(machine.frameRoom(.init()) == .stop)
        #expect(machine.resume(.init()) == .hold)
        #expect(machine.frameRejected() == false)
        #expect(machine.finish(leftover: nil, wholeFrameWaiting: false) == .none)
    }

    @Test func inputEndingInsideAFrameIsAnsweredWithItsErrorAfterTheWholeFramesBeforeIt() {
        var machine = Machine(maximumInFlight: 4)
        machine.peerHalfClosed()
        #expect(machine.finish(leftover: .truncated(3), wholeFrameWaiting: true) == .none)
        #expect(machine.finish(leftover: .truncated(3), wholeFrameWaiting: false) == .reject(.truncated(3)))
        #expect(machine.frameRejected() == true)
        #expect(machine.isClosing)
    }

    @Test func aBrokenFrameIsRejectedOnce() {
        var machine = Machine(maximumInFlight: 4)
        #expect(machine.frameRejected() == true)
        #expect(machine.frameRejected() == false)
    }

    @Test func quiescingClosesWhenThePeerIsQuietOrTheGraceEnds() {
        var machine = Machine(maximumInFlight: 4)
        #expect(machine.quietCheck(now: 0, unansweredInput: false) == .done)
        #expect(machine.quiesce(deadline: 1_000) == true)
        _ = machine.bytesRead()
        // The peer sent something since the last check: check again.
        #expect(machine.quietCheck(now: 10, unansweredInput: false) == .checkAgain)
        // Input still waiting for an answer is not quiet either.
        #expect(machine.quietCheck(now: 20, unansweredInput: true) == .checkAgain)
        machine.offloadStarted()
        #expect(machine.quietCheck(now: 30, unansweredInput: false) == .checkAgain)
        machine.offloadFinished()
        #expect(machine.quietCheck(now: 40, unansweredInput: false) == .close)
        #expect(machine.isClosing)
        #expect(machine.quiesce(deadline: 5_000) == false)

        var busy = Machine(maximumInFlight: 4)
        #expect(busy.quiesce(deadline: 1_000) == true)
        _ = busy.bytesRead()
        #expect(busy.quietCheck(now: 1_001, unansweredInput: true) == .close)
        // A second quiesce never extends the grace period.
        var twice = Machine(maximumInFlight: 4)
        #expect(twice.quiesce(deadline: 1_000) == true)
        #expect(twice.quiesce(deadline: 9_000) == true)
        #expect(twice.phase == .quiescing(deadline: 1_000))
    }
}

/// The channel handler on NIO's EmbeddedChannel: real frames in, real frames out, no socket.
@Suite struct RequestHandlerTests {
    /// A handler over in-memory services on an embedded channel; `reads` counts the reads the
    /// handler let through to the channel.
    final class Harness {
        let channel = EmbeddedChannel()
        let services: RequestServices
        let pool = NIOThreadPool(numberOfThreads: 1)
        let reads = ReadCounter()

        init(limits: ConnectionLimits = ConnectionLimits(), records: [ConsentRecord] = [grant("alice", "marketing.advertising.targeted")]) throws {
            services = try memoryServices(records)
            try channel.pipeline.syncOperations.addHandler(reads)
            try channel.pipeline.syncOperations.addHandler(RequestHandler(processor: RequestProcessor(services: services, connection: 1), limits: limits, threadPool: pool))
            // Active, as an accepted connection is (closing is then observable).
            try channel.connect(to: SocketAddress(unixDomainSocketPath: "/consentd-test.sock")).wait()
            precondition(channel.isActive)
        }

        /// Sends bytes as one read burst.
        func send(_ bytes: [UInt8]) throws {
            try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
            channel.pipeline.fireChannelReadComplete()
        }

        /// Every answer written so far, as whole frames decoded by SwiftProtobuf.
        func answers() throws -> [Consentd_V1_Response] {
            var bytes: [UInt8] = []
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
            var responses: [Consentd_V1_Response] = []
            var offset = 0
            while offset < bytes.count {
                let rest = bytes[offset...]
                guard case let .length(length, prefix) = rest.withUnsafeBytes({ FrameCodec.readPrefix($0) }) else {
                    Issue.record("the handler wrote a broken frame")
                    break
                }
                let end = offset + prefix + Int(length)
                try #require(end <= bytes.count, "the handler wrote a partial frame")
                responses.append(try Consentd_V1_Response(serializedBytes: Array(bytes[(offset + prefix)..<end])))
                offset = end
            }
            return responses
        }
    }

    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var count = 0

        func read(context: ChannelHandlerContext) {
            count += 1
            context.read()
        }
    }

    static func frame(_ request: Consentd_V1_Request) throws -> [UInt8] { FrameCodec.frame(try request.serializedBytes()) }

    static func checks(_ count: Int) throws -> [UInt8] {
        try (1...count).flatMap { try frame(checkRequest(UInt64($0), "alice", "marketing.advertising.targeted", "user.behavior.browsing")) }
    }

    @Test func framesSplitAnywhereAreAnsweredInOrder() throws {
        let stream = try Self.checks(5) + Self.frame(request(6) { $0.status = .init() })
        // Every split point of the stream into two reads.
        for split in 0...stream.count {
            let harness = try Harness()
            try harness.send(Array(stream[..<split]))
            try harness.send(Array(stream[split...]))
            let answers = try harness.answers()
            #expect(answers.map(\.id) == [1, 2, 3, 4, 5, 6], "split at \(split)")
            #expect(answers.prefix(5).allSatisfy { $0.check.decision == .allow && $0.check.reason == .consentGranted })
            #expect(answers.last?.status.version == "in-memory")
            #expect(harness.channel.isActive)
            _ = try harness.channel.finish()
        }
    }

    @Test func aBrokenLengthIsAnsweredWithAnErrorAndClosesTheConnection() throws {
        let harness = try Harness()
        try harness.send(try Self.checks(1) + [UInt8](repeating: 0xFF, count: 11))
        let answers = try harness.answers()
        #expect(answers.count == 2)
        #expect(answers.first?.check.decision == .allow)
        #expect(answers.last?.id == 0)
        #expect(answers.last?.error.code == .malformedFrame)
        #expect(answers.last?.error.message.contains("closing the connection") == true)
        #expect(!harness.channel.isActive)
        #expect(harness.services.counters.framesMalformed.load(ordering: .relaxed) == 1)
    }

    @Test func aHalfCloseInsideAFrameAnswersTheWholeFramesThenTheError() throws {
        let harness = try Harness()
        let stream = try Self.checks(2)
        try harness.send(Array(stream.dropLast(3)))
        harness.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let answers = try harness.answers()
        #expect(answers.map(\.id) == [1, 0])
        #expect(answers.last?.error.message.contains("closing the connection") == true)
        #expect(!harness.channel.isActive)
    }

    @Test func aHalfCloseAfterWholeFramesAnswersThemAndCloses() throws {
        let harness = try Harness()
        try harness.send(try Self.checks(3))
        harness.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(try harness.answers().map(\.id) == [1, 2, 3])
        #expect(!harness.channel.isActive)
    }

    /// A peer that does not read its answers: once a budget of answers waits, the handler takes
    /// no more frames and reads no more; when the peer reads again, the rest is answered.
    @Test func aPeerThatDoesNotReadStopsTheConnectionUntilItDoes() throws {
        var limits = ConnectionLimits()
        limits.maximumPendingOutput = 4096
        let harness = try Harness(limits: limits)
        harness.channel.isWritable = false
        let count = 400
        try harness.send(try Self.checks(count))
        let first = try harness.answers()
        #expect(!first.isEmpty)
        #expect(first.count < count, "every frame was answered for a peer that reads nothing")
        #expect(first.map(\.id) == (1...UInt64(first.count)).map { $0 })
        // Reading is held back while answers wait.
        let readsBefore = harness.reads.count
        harness.channel.read()
        #expect(harness.reads.count == readsBefore)
        // The peer reads: the rest is answered, in order, and the owed read is made.
        harness.channel.isWritable = true
        harness.channel.pipeline.fireChannelWritabilityChanged()
        let rest = try harness.answers()
        #expect((first + rest).map(\.id) == (1...UInt64(count)).map { $0 })
        #expect(harness.reads.count == readsBefore + 1)
        _ = try harness.channel.finish()
    }

    /// The frame timeout measures the peer, not the daemon: the time reading was held back for
    /// the peer's unread answers does not count against a frame it had begun.
    @Test func timeTheDaemonHeldReadingDoesNotCountAgainstAFrame() throws {
        var limits = ConnectionLimits()
        limits.frameTimeout = 0.2
        let harness = try Harness(limits: limits)
        harness.channel.isWritable = false
        let stream = try Self.checks(3)
        let cut = stream.count - 5
        try harness.send(Array(stream[..<cut]))
        harness.channel.read()  // held: the peer reads nothing
        usleep(400_000)
        harness.channel.isWritable = true
        harness.channel.pipeline.fireChannelWritabilityChanged()
        try harness.send(Array(stream[cut...]))
        #expect(try harness.answers().map(\.id) == [1, 2, 3])
        #expect(harness.channel.isActive)
        // A peer that is read and still drips is late.
        let dripper = try Harness(limits: limits)
        try dripper.send(Array(stream[..<cut]))
        usleep(400_000)
        try dripper.send(Array(stream[cut..<(cut + 1)]))
        #expect(try dripper.answers().last?.error.code == .malformedFrame)
        #expect(!dripper.channel.isActive)
    }

    @Test func quiescingClosesAQuietConnectionAfterOneCheck() throws {
        let harness = try Harness()
        try harness.send(try Self.checks(1))
        harness.channel.pipeline.fireUserInboundEventTriggered(QuiesceEvent())
        #expect(harness.channel.isActive)
        harness.channel.embeddedEventLoop.advanceTime(by: .milliseconds(30))
        #expect(!harness.channel.isActive)
        #expect(try harness.answers().map(\.id) == [1])
    }

    @Test func quiescingKeepsAnsweringAPeerThatIsStillSending() throws {
        let harness = try Harness()
        harness.channel.pipeline.fireUserInboundEventTriggered(QuiesceEvent())
        try harness.send(try Self.checks(1))
        harness.channel.embeddedEventLoop.advanceTime(by: .milliseconds(30))
        #expect(harness.channel.isActive, "closed a connection that had just sent a request")
        harness.channel.embeddedEventLoop.advanceTime(by: .milliseconds(30))
        #expect(!harness.channel.isActive)
        #expect(try harness.answers().map(\.id) == [1])
    }

    /// A peer that sends part of a frame and then nothing is answered when the frame timeout
    /// runs out, without waiting for another byte (or for the idle timeout).
    @Test func aFrameThatStopsArrivingIsAnsweredAtItsDeadline() throws {
        var limits = ConnectionLimits()
        limits.frameTimeout = 0.2
        let harness = try Harness(limits: limits)
        let stream = try Self.checks(2)
        try harness.send(Array(stream[..<(stream.count - 3)]))
        #expect(try harness.answers().map(\.id) == [1])
        usleep(300_000)
        harness.channel.embeddedEventLoop.advanceTime(by: .milliseconds(300))
        let answers = try harness.answers()
        #expect(answers.map(\.error.code) == [.malformedFrame], "\(answers)")
        #expect(!harness.channel.isActive)
        // Before its deadline, the timer leaves a slow frame alone.
        let patient = try Harness(limits: limits)
        try patient.send(Array(stream[..<(stream.count - 3)]))
        patient.channel.embeddedEventLoop.advanceTime(by: .milliseconds(300))
        try patient.send(Array(stream[(stream.count - 3)...]))
        #expect(try patient.answers().map(\.id) == [1, 2])
        #expect(patient.channel.isActive)
    }

    /// The idle timeout measures the peer: while the daemon holds reading back (the peer is not
    /// reading its answers) the connection is not idle; an idle close delivers computed answers.
    @Test func theIdleTimeoutDoesNotCountTheDaemonsHoldAndKeepsAnswers() throws {
        var limits = ConnectionLimits()
        limits.maximumPendingOutput = 4096
        limits.idleTimeout = 0.05
        let harness = try Harness(limits: limits)
        harness.channel.isWritable = false
        try harness.send(try Self.checks(400))
        harness.channel.read()  // held: answers wait for the peer
        harness.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(harness.channel.isActive, "closed as idle a connection the daemon was holding")
        #expect(harness.services.counters.connectionsIdleClosed.load(ordering: .relaxed) == 0)
        harness.channel.isWritable = true
        harness.channel.pipeline.fireChannelWritabilityChanged()
        // Just resumed: not idle yet.
        harness.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(harness.channel.isActive)
        #expect(try harness.answers().map(\.id) == (1...400).map { UInt64($0) })
        usleep(100_000)
        // Answers computed before an idle close reach the peer.
        try harness.send(try Self.checks(1))
        harness.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(try harness.answers().map(\.id) == [1])
        #expect(!harness.channel.isActive)
        #expect(harness.services.counters.connectionsIdleClosed.load(ordering: .relaxed) == 1)
    }

    @Test func anIdleConnectionIsClosedAndCounted() throws {
        let harness = try Harness()
        harness.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(!harness.channel.isActive)
        #expect(harness.services.counters.connectionsIdleClosed.load(ordering: .relaxed) == 1)
    }
}
