import ConsentTransport

/// The life of one connection as a value: the channel handler reports what happened, the state
/// machine answers what to do, and owns every flag that decides it. No I/O and no NIO, so each
/// transition is unit-tested on its own (ConnectionStateMachineTests); `RequestHandler` only
/// carries the actions out. (The shape follows the connection state machines of swift-nio-http2
/// and Hummingbird: events in, actions out.)
///
/// A connection is `open` until one of three things ends it: the peer half-closes (answer
/// what it sent, then close), the daemon shuts down (`quiescing`: keep answering until the
/// peer has been quiet for one check, or the grace period ends), or a broken frame (answer it
/// with an error, then close). `closing` takes no more frames and ignores further input.
struct ConnectionStateMachine {
    enum Phase: Equatable {
        /// Reading and answering.
        case open
        /// Shutting down: answering what the peer sends until it has been quiet; closed at
        /// `deadline` (monotonic nanoseconds) at the latest.
        case quiescing(deadline: UInt64)
        /// Answers written so far are being flushed; then the channel closes.
        case closing
    }

    /// What holds input back, as the handler sees it when it asks.
    struct Room: Equatable {
        /// The channel takes more output (below its high watermark).
        var writable = true
        /// `block` receipts: the receipt queue is full.
        var receiptsCongested = false
        /// A whole frame has been read and waits to be answered.
        var frameWaiting = false
        /// The answers not yet handed to the channel reached the connection's budget.
        var answersOverBudget = false
    }

    enum ReadAction: Equatable {
        /// Ask the channel for more bytes.
        case read
        /// Read nothing now; `resume` is asked again when room is made.
        case hold
        /// Read nothing until the receipt queue has room: poll it.
        case waitForReceipts
    }

    enum FrameAction: Equatable {
        /// Cut and answer the next frame.
        case take
        /// Take none now.
        case stop
        /// Hand the answers made so far to the channel first, then take one only if it is
        /// still writable.
        case flushFirst
    }

    enum FinishAction: Equatable {
        case none
        /// The input ended inside a frame: answer with this error and close.
        case reject(FrameError)
        /// Everything read is answered: close once the answers are written.
        case close
    }

    enum QuietCheck: Equatable {
        case close
        case checkAgain
        /// Not quiescing (already closing): nothing more to check.
        case done
    }

    private(set) var phase: Phase = .open
    /// The peer half-closed its side.
    private(set) var inputClosed = false
    /// Requests handed to the blocking pool and not answered yet.
    private(set) var inFlight = 0
    /// A `read` was held back; one is owed to the channel when room is made.
    private(set) var readPending = false
    /// Reads since the last quiet check.
    private(set) var readsSinceCheck = 0
    let maximumInFlight: Int

    init(maximumInFlight: Int) {
        self.maximumInFlight = maximumInFlight
    }

    var isClosing: Bool { phase == .closing }

    /// An idle timeout may close the connection: the silence is the peer's, not the daemon's
    /// (reading is not held back and no request is in flight).
    /// The daemon is shutting down.
    var isQuiescing: Bool { if case .quiescing = phase { true } else { false } }

    var mayCloseIdle: Bool { phase != .closing && !readPending && inFlight == 0 }

    /// Bytes arrived; false when they are to be dropped (the connection is closing).
    mutating func bytesRead() -> Bool {
        guard phase != .closing else { return false }
        readsSinceCheck += 1
        return true
    }

    /// May another frame be taken now?
    func frameRoom(_ room: Room) -> FrameAction {
        // Past --max-in-flight (writes on the blocking pool, requests waiting for a sequence),
        // frames wait in the input until one is answered: what a connection holds is bounded.
        guard phase != .closing, !room.receiptsCongested, inFlight < maximumInFlight else { return .stop }
        return room.answersOverBudget ? .flushFirst : .take
    }

    /// The channel asks to read.
    mutating func read(_ room: Room) -> ReadAction {
        if inFlight >= maximumInFlight || !room.writable || room.receiptsCongested || room.frameWaiting {
            readPending = true
            return room.receiptsCongested ? .waitForReceipts : .hold
        }
        return .read
    }

    /// Room may have been made (an answer left, the peer read, receipts drained): the owed
    /// read, if any and if there is room now.
    mutating func resume(_ room: Room) -> ReadAction {
        guard readPending, phase != .closing, inFlight < maximumInFlight, room.writable else { return .hold }
        if room.receiptsCongested { return .waitForReceipts }
        guard !room.frameWaiting else { return .hold }
        readPending = false
        return .read
    }

    mutating func offloadStarted() { inFlight += 1 }

    mutating func offloadFinished() {
        precondition(inFlight > 0, "an offloaded request finished that never started")
        inFlight -= 1
    }

    /// The peer half-closed.
    mutating func peerHalfClosed() { inputClosed = true }

    /// After answering what could be answered: close a half-closed connection with nothing
    /// left, answering input that ends inside a frame (`leftover`) with its error first. Whole
    /// frames still waiting for room are answered first.
    mutating func finish(leftover: FrameError?, wholeFrameWaiting: Bool) -> FinishAction {
        guard inputClosed, phase != .closing, inFlight == 0 else { return .none }
        if let leftover {
            if wholeFrameWaiting { return .none }
            return .reject(leftover)
        }
        phase = .closing
        return .close
    }

    /// A broken frame: true when it is to be answered with an error (and the connection
    /// closed); false when the connection is closing anyway.
    mutating func frameRejected() -> Bool {
        guard phase != .closing else { return false }
        phase = .closing
        return true
    }

    /// Close after the answers written so far (a rejected frame, idle, or the end of quiescing).
    mutating func close() { phase = .closing }

    /// The daemon is shutting down: keep answering until `deadline` at the latest. Returns
    /// false when the connection is already closing.
    mutating func quiesce(deadline: UInt64) -> Bool {
        guard phase != .closing else { return false }
        if case let .quiescing(earlier) = phase {
            phase = .quiescing(deadline: min(earlier, deadline))
        } else {
            phase = .quiescing(deadline: deadline)
        }
        readsSinceCheck = 0
        return true
    }

    /// One quiet check of a quiescing connection: close when the peer sent nothing since the
    /// last one and nothing waits (quiet means the peer is quiet, not that this connection held
    /// reading back), or when the grace period is over.
    mutating func quietCheck(now: UInt64, unansweredInput: Bool) -> QuietCheck {
        guard case let .quiescing(deadline) = phase else { return .done }
        let quiet = readsSinceCheck == 0 && inFlight == 0 && !unansweredInput && !readPending
        readsSinceCheck = 0
        if quiet || now > deadline {
            phase = .closing
            return .close
        }
        return .checkAgain
    }
}
