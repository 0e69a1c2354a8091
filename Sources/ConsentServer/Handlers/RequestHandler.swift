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

/// The hot path: splits the byte stream into frames, answers decisions inline from snapshots,
/// sends consent administration to the blocking pool, and flushes once per read burst.
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
    private let threadPool: NIOThreadPool
    private let state: ServerState
    private var splitter: FrameSplitter
    /// Bytes read and not yet cut into frames.
    private var inbound: ByteBuffer?
    private var inFlight = 0
    private var readPending = false
    private var needsFlush = false
    private var processing = false
    private var readsSinceCheck = 0
    private var inputClosed = false
    private var closing = false
    private var scratch: [UInt8] = []
    /// Responses of the current read burst, written as one buffer.
    private var pending: ByteBuffer?

    private let metrics: DaemonMetrics?
    private var receiptWaitScheduled = false

    init(state: ServerState, threadPool: NIOThreadPool) {
        self.state = state
        self.metrics = state.metrics
        self.processor = RequestProcessor(state: state)
        self.threadPool = threadPool
        self.splitter = FrameSplitter(maximumFrameSize: state.configuration.maximumFrameSize, frameTimeout: state.configuration.frameTimeout)
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
        guard !closing else { return }
        readsSinceCheck += 1
        var bytes = unwrapInboundIn(data)
        if inbound == nil || inbound!.readableBytes == 0 {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        processInbound(context: context)
    }

    /// Whether another frame may be taken now: not closing, `block` receipts not congested, and
    /// the answers already made have room (under the budget, or the peer is reading them).
    private func mayTakeFrame(context: ChannelHandlerContext) -> Bool {
        guard !closing else { return false }
        if state.receipts?.isCongested == true { return false }
        guard let pending, pending.readableBytes >= state.configuration.maximumPendingOutput else { return true }
        // A full budget of answers: hand them to the channel; take more frames only while the
        // peer is reading (what the channel holds is bounded by one budget and its watermark).
        flushIfNeeded(context: context)
        return context.channel.isWritable
    }

    /// Closes once every answer written so far has reached the socket (or after 5 s, for a peer
    /// that never reads): closing at once would discard answers still queued in the channel.
    private func closeAfterWrites(context: ChannelHandlerContext) {
        closing = true
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
        if state.receipts?.isCongested == true { waitForReceipts(context: context) }
        finishIfInputClosed(context: context)
    }

    /// After the peer half-closed: once every frame is answered and nothing is in flight, close;
    /// input that ends inside a frame is answered with an error first.
    private func finishIfInputClosed(context: ChannelHandlerContext) {
        guard inputClosed, !closing, inFlight == 0 else { return }
        if let error = FrameSplitter.leftover(inbound) {
            // Whole frames still waiting for room are answered first.
            let hasWholeFrame = inbound!.withUnsafeReadableBytes { bytes -> Bool in
                if case let .length(length, prefix) = FrameCodec.readPrefix(bytes) { return bytes.count >= prefix + Int(clamping: length) }
                return false
            }
            if hasWholeFrame { return }
            reject(context: context, error)
            return
        }
        closeAfterWrites(context: context)
    }

    private func handle(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        let started = metrics != nil ? DaemonMetrics.now() : 0
        defer { processor.flushReceipts() }
        if pending == nil { pending = context.channel.allocator.buffer(capacity: 4096) }
        let answered = frame.withUnsafeReadableBytes { bytes in
            processor.fastCheck(bytes, into: &pending!) || processor.fastBatch(bytes, into: &pending!)
        }
        if answered {
            needsFlush = true
            metrics?.recordLatency(nanoseconds: DaemonMetrics.now() - started)
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
        switch processor.process(request) {
        case let .respond(response):
            write(context: context, response)
            metrics?.recordLatency(nanoseconds: DaemonMetrics.now() - started)
        case let .respondFrame(frame):
            if pending == nil { pending = context.channel.allocator.buffer(capacity: frame.count) }
            pending!.writeBytes(frame)
            needsFlush = true
            metrics?.recordLatency(nanoseconds: DaemonMetrics.now() - started)
        case let .offload(work):
            inFlight += 1
            state.counters.inFlight.add(1, ordering: .relaxed)
            threadPool.runIfActive(eventLoop: context.eventLoop, work).assumeIsolated().whenComplete { result in
                self.inFlight -= 1
                self.state.counters.inFlight.subtract(1, ordering: .relaxed)
                self.metrics?.recordLatency(nanoseconds: DaemonMetrics.now() - started)
                switch result {
                case let .success(response): self.write(context: context, response)
                case let .failure(error): self.write(context: context, .error(id: request.id, .unavailable, "could not run the request: \(error)"))
                }
                self.flushIfNeeded(context: context)
                self.resumeReadingIfPossible(context: context)
                self.processInbound(context: context)
            }
        }
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
            state.logger.error("cannot encode a response", metadata: ["error": "\(error)"])
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
        guard !closing else { return }
        ServerCounters.bump(state.counters.framesRejected)
        if case .tooLarge = error { ServerCounters.bump(state.counters.framesTooLarge) } else { ServerCounters.bump(state.counters.framesMalformed) }
        write(context: context, .error(id: 0, error.code, "\(error); closing the connection"))
        closeAfterWrites(context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let frameError = error as? FrameError {
            reject(context: context, frameError)
        } else {
            if !(error is ChannelError) && !(error is IOError) {
                state.logger.debug("connection error", metadata: ["error": "\(error)"])
            }
            context.close(promise: nil)
        }
    }

    // MARK: backpressure

    /// Whether frames already read are waiting for room.
    private var hasUnprocessedInput: Bool { (inbound?.readableBytes ?? 0) > 0 && !closing }

    func read(context: ChannelHandlerContext) {
        if inFlight >= state.configuration.maximumInFlight || !context.channel.isWritable || state.receipts?.isCongested == true
            || hasUnprocessedFrame {
            readPending = true
            if state.receipts?.isCongested == true { waitForReceipts(context: context) }
        } else {
            context.read()
        }
    }

    /// A whole frame is buffered and not yet answered (it waits for room): read no more.
    private var hasUnprocessedFrame: Bool {
        guard hasUnprocessedInput else { return false }
        return inbound!.withUnsafeReadableBytes { bytes -> Bool in
            if case let .length(length, prefix) = FrameCodec.readPrefix(bytes) { return bytes.count >= prefix + Int(clamping: min(length, UInt64(Int32.max))) }
            return false
        }
    }

    private func waitForReceipts(context: ChannelHandlerContext) {
        guard !receiptWaitScheduled else { return }
        receiptWaitScheduled = true
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(1)) {
            self.receiptWaitScheduled = false
            guard context.channel.isActive, !self.closing else { return }
            guard self.state.receipts?.hasRoom == true else {
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
        guard readPending, !closing, inFlight < state.configuration.maximumInFlight, context.channel.isWritable else { return }
        if state.receipts?.isCongested == true {
            waitForReceipts(context: context)
            return
        }
        guard !hasUnprocessedFrame else { return }
        readPending = false
        context.read()
    }

    private func scheduleQuietCheck(context: ChannelHandlerContext, deadline: NIODeadline) {
        readsSinceCheck = 0
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(30)) {
            guard context.channel.isActive else { return }
            // Quiet means the peer sent nothing, not that this handler held reading back.
            if (self.readsSinceCheck == 0 && self.inFlight == 0 && !self.hasUnprocessedInput && !self.readPending) || NIODeadline.now() > deadline {
                self.closeAfterWrites(context: context)
            } else {
                self.scheduleQuietCheck(context: context, deadline: deadline)
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            // The peer finished sending (half-close): answer what is in flight, then close.
            inputClosed = true
            flushIfNeeded(context: context)
            processInbound(context: context)
        } else if event is QuiesceEvent {
            // Answer everything the peer has already sent: keep reading until the connection has
            // been quiet (nothing read, nothing in flight) for one check interval, then close. A
            // peer that keeps sending is closed after a grace period.
            flushIfNeeded(context: context)
            context.read()
            scheduleQuietCheck(context: context, deadline: NIODeadline.now() + .seconds(5))
        } else if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            ServerCounters.bump(state.counters.connectionsIdleClosed)
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
