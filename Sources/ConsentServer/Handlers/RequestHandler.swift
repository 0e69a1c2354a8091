import ConsentWire
import Logging
import NIOCore
import NIOPosix
import SwiftProtobuf

/// Asks a connection's handler to finish what is in flight and close (graceful shutdown).
struct QuiesceEvent: Sendable {}

/// The peer's credentials as SO_PEERCRED reports them (the layout of Linux `struct ucred`).
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// The hot path: decodes each frame, answers decisions inline from snapshots, sends consent
/// administration to the blocking pool, and flushes once per read burst.
///
/// Backpressure: while `maximumInFlight` offloaded requests are outstanding, or the peer is not
/// reading its responses (the channel is not writable), the handler withholds `read()`, so the
/// daemon stops reading from that connection instead of buffering without bound.
final class RequestHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var processor: RequestProcessor
    private let threadPool: NIOThreadPool
    private let state: ServerState
    private var inFlight = 0
    private var readPending = false
    private var needsFlush = false
    private var quiescing = false
    private var readsSinceCheck = 0
    private var inputClosed = false
    private var closing = false
    private var scratch: [UInt8] = []
    /// Responses of the current read burst, written as one buffer.
    private var pending: ByteBuffer?

    private let metrics: DaemonMetrics?
    private var receiptWaitScheduled = false
    /// Frames read while `block` receipts held the connection back, in order.
    private var held = CircularBuffer<ByteBuffer>()

    init(state: ServerState, threadPool: NIOThreadPool) {
        self.state = state
        self.metrics = state.metrics
        self.processor = RequestProcessor(state: state)
        self.threadPool = threadPool
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { readCredentials(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        readCredentials(context: context)
        context.fireChannelActive()
    }

    private func readCredentials(context: ChannelHandlerContext) {
        guard let provider = context.channel as? SocketOptionProvider else { return }
        #if os(Linux)
        let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        future.assumeIsolated().whenSuccess { credentials in
            self.processor.peer = credentials
        }
        #endif
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        readsSinceCheck += 1
        let frame = unwrapInboundIn(data)
        // `block` receipts: while the writer is behind, frames already read wait here unanswered
        // (no receipt is made for them yet) and nothing more is read.
        if !held.isEmpty || state.receipts?.isCongested == true {
            held.append(frame)
            waitForReceipts(context: context)
            return
        }
        handle(frame, context: context)
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
        let request: Consentd_V1_Request
        do {
            request = try frame.withUnsafeReadableBytes { try Consentd_V1_Request(serializedBytes: RawBytes($0)) }
        } catch {
            reject(context: context, FrameError.malformedMessage("\(error)"))
            return
        }
        switch processor.process(request) {
        case let .respond(response):
            write(context: context, response)
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
                if self.inputClosed && self.inFlight == 0 && self.held.isEmpty { context.close(promise: nil) }
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
        closing = true
        ServerCounters.bump(state.counters.framesRejected)
        if case .tooLarge = error { ServerCounters.bump(state.counters.framesTooLarge) } else { ServerCounters.bump(state.counters.framesMalformed) }
        write(context: context, .error(id: 0, error.code, "\(error); closing the connection"))
        flushIfNeeded(context: context)
        context.close(promise: nil)
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

    func read(context: ChannelHandlerContext) {
        if inFlight >= state.configuration.maximumInFlight || !context.channel.isWritable {
            readPending = true
        } else if !held.isEmpty || state.receipts?.isCongested == true {
            // `block` receipts: the writer is behind; read nothing more until its queue drains.
            readPending = true
            waitForReceipts(context: context)
        } else {
            context.read()
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
            while let frame = self.held.popFirst() {
                self.handle(frame, context: context)
                if self.state.receipts?.isCongested == true { break }
            }
            self.flushIfNeeded(context: context)
            if !self.held.isEmpty {
                self.waitForReceipts(context: context)
            } else if self.inputClosed && self.inFlight == 0 {
                context.close(promise: nil)
            } else {
                self.resumeReadingIfPossible(context: context)
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeReadingIfPossible(context: context)
        context.fireChannelWritabilityChanged()
    }

    private func resumeReadingIfPossible(context: ChannelHandlerContext) {
        if readPending && inFlight < state.configuration.maximumInFlight && context.channel.isWritable {
            if !held.isEmpty || state.receipts?.isCongested == true {
                waitForReceipts(context: context)
                return
            }
            readPending = false
            context.read()
        }
    }

    private func scheduleQuietCheck(context: ChannelHandlerContext, deadline: NIODeadline) {
        readsSinceCheck = 0
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(30)) {
            guard context.channel.isActive else { return }
            // Quiet means the peer sent nothing, not that this handler held reading back.
            if (self.readsSinceCheck == 0 && self.inFlight == 0 && self.held.isEmpty && !self.readPending) || NIODeadline.now() > deadline {
                self.flushIfNeeded(context: context)
                context.close(promise: nil)
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
            if inFlight == 0 && held.isEmpty { context.close(promise: nil) }
        } else if event is QuiesceEvent {
            // Answer everything the peer has already sent: keep reading until the connection has
            // been quiet (nothing read, nothing in flight) for one check interval, then close. A
            // peer that keeps sending is closed after a grace period.
            quiescing = true
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
