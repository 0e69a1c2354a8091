import ConsentReceipts
import ConsentTransport
import ConsentWire
import Logging
import NIOCore
import NIOPosix
import SwiftProtobuf

/// Asks a connection's handler to finish what is in flight and close (graceful shutdown).
struct QuiesceEvent: Sendable {}

/// The peer's credentials as SO_PEERCRED reports them (the layout of Linux `struct ucred`).
package struct PeerCredentials: Sendable {
    package var pid: Int32 = 0
    package var uid: UInt32 = 0
    package var gid: UInt32 = 0

    package init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    /// The credentials of a connected channel, read on its event loop (nil where unsupported).
    static func read(_ channel: Channel) -> PeerCredentials? {
        #if os(Linux)
        guard let provider = channel as? SocketOptionProvider else { return nil }
        var found: PeerCredentials?
        let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        // On the channel's own loop the option is read at once; the future is already complete.
        future.assumeIsolated().whenSuccess { found = $0 }
        return found
        #else
        return nil
        #endif
    }
}

/// The limits of one connection, from the configuration.
struct ConnectionLimits: Sendable {
    var maximumFrameSize = FrameCodec.defaultMaximumFrameSize
    var frameTimeout: Double = 10
    var maximumPendingOutput = 256 << 10
    var maximumInFlight = 256
    /// Seconds; 0 = never (the IdleStateHandler in front of the handler fires the event).
    var idleTimeout: Double = 0

    init() {}

    init(_ configuration: ServerConfiguration) {
        maximumFrameSize = configuration.maximumFrameSize
        frameTimeout = configuration.frameTimeout
        maximumPendingOutput = configuration.maximumPendingOutput
        maximumInFlight = configuration.maximumInFlight
        idleTimeout = configuration.idleTimeout
    }
}

/// The hot path: splits the byte stream into frames, answers decisions inline from snapshots,
/// sends consent administration to the blocking pool, and flushes once per read burst. When to
/// read, take a frame or close is decided by `ConnectionStateMachine`; this handler owns the
/// buffers and carries its actions out.
///
/// Memory per connection is bounded: frames are cut out of the input only while there is room
/// for their answers. When the answers waiting for the peer pass `maximumPendingOutput` and the
/// peer is not reading them (the channel is not writable), or `block` receipts are congested,
/// the handler stops taking frames from its input and stops reading from the socket; what was
/// read stays as raw bytes (at most one read cycle) until the peer catches up.
final class RequestHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var processor: RequestProcessor
    private var connection: ConnectionStateMachine
    private let services: RequestServices
    private let limits: ConnectionLimits
    private let threadPool: NIOThreadPool
    private var splitter: FrameSplitter
    /// Bytes read and not yet cut into frames.
    private var inbound: ByteBuffer?
    /// Responses of the current read burst, written as one buffer.
    private var pending: ByteBuffer?
    private var needsFlush = false
    /// Guards `processInbound` against re-entry from the callbacks it causes.
    private var processing = false
    private var scratch: [UInt8] = []
    private var receiptWaitScheduled = false
    /// A check of the partly buffered frame's deadline is scheduled.
    private var frameTimerArmed = false
    /// When reading last resumed after the daemon held it back (monotonic nanoseconds).
    private var lastResumed: Int64 = 0
    /// This connection's requests waiting for a store sequence (in its loop's `LoopWaits`).
    private var waits: [ObjectIdentifier: LoopWaits.Wait] = [:]

    init(processor: RequestProcessor, limits: ConnectionLimits, threadPool: NIOThreadPool) {
        self.processor = processor
        self.services = processor.services
        self.limits = limits
        self.connection = ConnectionStateMachine(maximumInFlight: limits.maximumInFlight)
        self.threadPool = threadPool
        self.splitter = FrameSplitter(maximumFrameSize: limits.maximumFrameSize, frameTimeout: limits.frameTimeout)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { readCredentials(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        readCredentials(context: context)
        context.fireChannelActive()
    }

    private func readCredentials(context: ChannelHandlerContext) {
        if let credentials = PeerCredentials.read(context.channel) { processor.peer = credentials }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard connection.bytesRead() else { return }
        var bytes = unwrapInboundIn(data)
        if inbound == nil || inbound!.readableBytes == 0 {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        processInbound(context: context)
    }

    /// What holds input back now (for reads).
    private func room(_ context: ChannelHandlerContext) -> ConnectionStateMachine.Room {
        ConnectionStateMachine.Room(
            writable: context.channel.isWritable,
            receiptsCongested: services.receipts?.isCongested == true,
            frameWaiting: hasWholeFrame(limitedTo: UInt64(Int32.max)),
            answersOverBudget: (pending?.readableBytes ?? 0) >= limits.maximumPendingOutput
        )
    }

    /// Whether another frame may be taken now: not closing, `block` receipts not congested, and
    /// the answers already made have room (under the budget, or the peer is reading them).
    private func mayTakeFrame(context: ChannelHandlerContext) -> Bool {
        let room = ConnectionStateMachine.Room(
            receiptsCongested: services.receipts?.isCongested == true,
            answersOverBudget: (pending?.readableBytes ?? 0) >= limits.maximumPendingOutput
        )
        switch connection.frameRoom(room) {
        case .take: return true
        case .stop: return false
        case .flushFirst:
            // A full budget of answers: hand them to the channel; take more frames only while
            // the peer is reading (what the channel holds is bounded by one budget and its
            // watermark).
            flushIfNeeded(context: context)
            return context.channel.isWritable
        }
    }

    /// Closes once every answer written so far has reached the socket (or after 5 s, for a peer
    /// that never reads): closing at once would discard answers still queued in the channel.
    private func closeAfterWrites(context: ChannelHandlerContext) {
        connection.close()
        inbound = nil
        if let buffer = pending, buffer.readableBytes > 0 {
            pending = nil
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
        needsFlush = false
        let drained = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: drained)
        drained.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(5)) {
            if context.channel.isActive { context.close(promise: nil) }
        }
    }

    /// Cuts frames out of `inbound` and answers them while there is room; then closes a
    /// half-closed connection that has nothing left to answer.
    private func processInbound(context: ChannelHandlerContext) {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        // While reading is held back (the peer is not reading its answers), a frame the peer
        // has begun is not late: that time is the daemon's, not the peer's.
        if connection.readPending { splitter.restartClock() }
        while inbound != nil && inbound!.readableBytes > 0 && mayTakeFrame(context: context) {
            let frame: ByteBuffer?
            do {
                frame = try splitter.next(&inbound!)
            } catch let error as FrameError {
                reject(context: context, error)
                return
            } catch {
                reject(context: context, .malformedMessage("\(error)"))
                return
            }
            guard let frame else { break }
            handle(frame, context: context)
        }
        if let buffer = inbound {
            if buffer.readableBytes == 0 {
                inbound = nil
            } else if buffer.readerIndex > 64 << 10 {
                inbound!.discardReadBytes()
            }
        }
        if services.receipts?.isCongested == true { waitForReceipts(context: context) }
        armFrameTimer(context: context)
        switch connection.finish(leftover: FrameSplitter.leftover(inbound), wholeFrameWaiting: hasWholeFrame(limitedTo: .max)) {
        case .none: break
        case let .reject(error): reject(context: context, error)
        case .close: closeAfterWrites(context: context)
        }
    }

    /// A whole frame (of at most `limit` bytes) is buffered and not yet answered.
    private func hasWholeFrame(limitedTo limit: UInt64) -> Bool {
        guard let inbound, inbound.readableBytes > 0, !connection.isClosing else { return false }
        return inbound.withUnsafeReadableBytes { bytes -> Bool in
            if case let .length(length, prefix) = FrameCodec.readPrefix(bytes) { return bytes.count >= prefix + Int(clamping: min(length, limit)) }
            return false
        }
    }

    private func handle(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        let started = services.metrics != nil ? DaemonMetrics.now() : 0
        defer { processor.flushReceipts() }
        if pending == nil { pending = context.channel.allocator.buffer(capacity: 4096) }
        let answered = frame.withUnsafeReadableBytes { bytes in
            processor.fastCheck(bytes, into: &pending!) || processor.fastBatch(bytes, into: &pending!)
        }
        if answered {
            needsFlush = true
            services.metrics?.recordLatency(nanoseconds: DaemonMetrics.now() - started)
            return
        }
        // Refuse an oversized batch or write from its shape, before materialising its entries.
        if let refusal = frame.withUnsafeReadableBytes({ processor.refuseOversized($0) }) {
            write(context: context, refusal)
            return
        }
        let request: Consentd_V1_Request
        do {
            request = try frame.withUnsafeReadableBytes { try Consentd_V1_Request(serializedBytes: RawBytes($0)) }
        } catch {
            if let refusal = frame.withUnsafeReadableBytes({ processor.refuseInvalidUTF8($0, error) }) {
                write(context: context, refusal)
                return
            }
            reject(context: context, FrameError.malformedMessage("\(error)"))
            return
        }
        complete(processor.process(request), request: request, context: context, started: started)
    }

    /// Sends (or schedules) what the processor answered for `request`.
    private func complete(_ outcome: RequestProcessor.Outcome, request: Consentd_V1_Request, context: ChannelHandlerContext, started: Int64) {
        switch outcome {
        case let .respond(response):
            write(context: context, response)
            services.metrics?.recordLatency(nanoseconds: DaemonMetrics.now() - started)
        case let .respondFrame(frame):
            if pending == nil { pending = context.channel.allocator.buffer(capacity: frame.count) }
            pending!.writeBytes(frame)
            needsFlush = true
            services.metrics?.recordLatency(nanoseconds: DaemonMetrics.now() - started)
        case let .offload(work):
            connection.offloadStarted()
            services.counters.inFlight.add(1, ordering: .relaxed)
            threadPool.runIfActive(eventLoop: context.eventLoop, work).assumeIsolated().whenComplete { result in
                self.connection.offloadFinished()
                self.services.counters.inFlight.subtract(1, ordering: .relaxed)
                self.services.metrics?.recordLatency(nanoseconds: DaemonMetrics.now() - started)
                switch result {
                case let .success(response): self.write(context: context, response)
                case let .failure(error): self.write(context: context, .error(id: request.id, .unavailable, "could not run the request: \(error)"))
                }
                self.flushIfNeeded(context: context)
                self.resumeReadingIfPossible(context: context)
                self.processInbound(context: context)
            }
        case let .waitForSequence(sequence):
            // Counted like offloaded work (in flight, at most --max-in-flight per connection; the
            // connection takes no further frames past that). Later requests are answered
            // meanwhile and may overtake it. Shutting down, or with no wait allowed, it is
            // answered at once.
            connection.offloadStarted()
            services.counters.inFlight.add(1, ordering: .relaxed)
            guard services.maximumSequenceWait > 0, !connection.isQuiescing else {
                finishWait(request, context: context, started: started)
                return
            }
            services.store?.nudge()
            let deadline = NIODeadline.now() + .nanoseconds(Int64(services.maximumSequenceWait * 1e9))
            var registered: LoopWaits.Wait?
            registered = services.sequenceWaits.on(context.eventLoop).add(sequence: sequence, deadline: deadline) {
                if let registered { self.waits[ObjectIdentifier(registered)] = nil }
                self.finishWait(request, context: context, started: started)
            }
            waits[ObjectIdentifier(registered!)] = registered
        }
    }

    /// Answers a request that waited for a store sequence (the index holds it, or the wait is
    /// over, or the daemon is shutting down), then goes on with the connection's input.
    private func finishWait(_ request: Consentd_V1_Request, context: ChannelHandlerContext, started: Int64) {
        connection.offloadFinished()
        services.counters.inFlight.subtract(1, ordering: .relaxed)
        guard context.channel.isActive else { return }
        let outcome = processor.resume(request)
        processor.flushReceipts()
        complete(outcome, request: request, context: context, started: started)
        flushIfNeeded(context: context)
        resumeReadingIfPossible(context: context)
        processInbound(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context: context)
        context.fireChannelReadComplete()
    }

    private func write(context: ChannelHandlerContext, _ response: Consentd_V1_Response) {
        do {
            let payload: [UInt8] = try response.serializedBytes()
            scratch.removeAll(keepingCapacity: true)
            FrameCodec.appendVarint(UInt64(payload.count), to: &scratch)
            if pending == nil { pending = context.channel.allocator.buffer(capacity: scratch.count + payload.count) }
            pending!.writeBytes(scratch)
            pending!.writeBytes(payload)
            needsFlush = true
        } catch {
            services.logger.error("cannot encode a response", metadata: ["error": "\(error)"])
        }
    }

    private func flushIfNeeded(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            if let buffer = pending, buffer.readableBytes > 0 {
                pending = nil
                context.write(wrapOutboundOut(buffer), promise: nil)
            }
            context.flush()
        }
    }

    /// Answers a broken frame with an error and closes this connection only.
    private func reject(context: ChannelHandlerContext, _ error: FrameError) {
        guard connection.frameRejected() else { return }
        let counters = services.counters
        ServerCounters.bump(counters.framesRejected)
        if case .tooLarge = error { ServerCounters.bump(counters.framesTooLarge) } else { ServerCounters.bump(counters.framesMalformed) }
        write(context: context, .error(id: 0, error.code, "\(error); closing the connection"))
        closeAfterWrites(context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let frameError = error as? FrameError {
            reject(context: context, frameError)
        } else {
            if !(error is ChannelError) && !(error is IOError) {
                services.logger.debug("connection error", metadata: ["error": "\(error)"])
            }
            context.close(promise: nil)
        }
    }

    // MARK: backpressure

    func read(context: ChannelHandlerContext) {
        switch connection.read(room(context)) {
        case .read: context.read()
        case .hold: break
        case .waitForReceipts: waitForReceipts(context: context)
        }
    }

    private func waitForReceipts(context: ChannelHandlerContext) {
        guard !receiptWaitScheduled else { return }
        receiptWaitScheduled = true
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(1)) {
            self.receiptWaitScheduled = false
            guard context.channel.isActive, !self.connection.isClosing else { return }
            guard self.services.receipts?.hasRoom == true else {
                self.waitForReceipts(context: context)
                return
            }
            self.processInbound(context: context)
            self.flushIfNeeded(context: context)
            self.resumeReadingIfPossible(context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            processInbound(context: context)
            flushIfNeeded(context: context)
        }
        resumeReadingIfPossible(context: context)
        context.fireChannelWritabilityChanged()
    }

    private func resumeReadingIfPossible(context: ChannelHandlerContext) {
        switch connection.resume(room(context)) {
        case .read:
            // The time reading was held back is the daemon's: a frame the peer had begun, and
            // its silence, count again from now.
            splitter.restartClock()
            lastResumed = FrameSplitter.now()
            context.read()
        case .hold: break
        case .waitForReceipts: waitForReceipts(context: context)
        }
    }

    /// A peer that sends part of a frame and then nothing is answered when the frame's time runs
    /// out, not only when more bytes arrive: checks the deadline then (and again if the clock was
    /// restarted meanwhile).
    private func armFrameTimer(context: ChannelHandlerContext) {
        guard !frameTimerArmed, !connection.isClosing, let deadline = splitter.partialDeadline else { return }
        frameTimerArmed = true
        let delay = max(deadline - FrameSplitter.now(), 0) + 1_000_000
        context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(delay)) {
            self.frameTimerArmed = false
            guard context.channel.isActive, !self.connection.isClosing, (self.inbound?.readableBytes ?? 0) > 0 else { return }
            self.processInbound(context: context)
            self.flushIfNeeded(context: context)
        }
    }

    private func scheduleQuietCheck(context: ChannelHandlerContext) {
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(30)) {
            guard context.channel.isActive else { return }
            let unanswered = (self.inbound?.readableBytes ?? 0) > 0
            switch self.connection.quietCheck(now: NIODeadline.now().uptimeNanoseconds, unansweredInput: unanswered) {
            case .close: self.closeAfterWrites(context: context)
            case .checkAgain: self.scheduleQuietCheck(context: context)
            case .done: break
            }
        }
    }

    /// Answers this connection's waiting requests now.
    private func answerWaitsNow(context: ChannelHandlerContext) {
        guard !waits.isEmpty else { return }
        let list = services.sequenceWaits.on(context.eventLoop)
        for wait in waits.values { list.answerNow(wait) }
        waits.removeAll()
    }

    /// The connection is gone: its waiting requests are forgotten, not answered.
    func channelInactive(context: ChannelHandlerContext) {
        if !waits.isEmpty {
            let list = services.sequenceWaits.on(context.eventLoop)
            for wait in waits.values {
                list.cancel(wait)
                // Counted in flight when it began to wait (`complete`): no longer.
                services.counters.inFlight.subtract(1, ordering: .relaxed)
            }
            waits.removeAll()
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            // The peer finished sending (half-close): answer what is in flight, then close.
            connection.peerHalfClosed()
            flushIfNeeded(context: context)
            processInbound(context: context)
        } else if event is QuiesceEvent {
            // Answer everything the peer has already sent: keep reading until the connection has
            // been quiet (nothing read, nothing in flight) for one check interval, then close. A
            // peer that keeps sending is closed after a grace period. Requests waiting for a
            // store sequence are answered now (their wait may be longer than the grace period).
            guard connection.quiesce(deadline: (NIODeadline.now() + .seconds(5)).uptimeNanoseconds) else { return }
            answerWaitsNow(context: context)
            flushIfNeeded(context: context)
            context.read()
            scheduleQuietCheck(context: context)
        } else if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            // Silence the daemon caused is not idleness: not while it holds reading back or has
            // requests in flight, nor within a timeout of resuming (the handler fires again later).
            let sinceResume = Double(FrameSplitter.now() - lastResumed) / 1e9
            guard connection.mayCloseIdle, lastResumed == 0 || sinceResume >= limits.idleTimeout else { return }
            ServerCounters.bump(services.counters.connectionsIdleClosed)
            // Answers already computed still reach the peer.
            closeAfterWrites(context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
