import ConsentModel
import ConsentStore
import Foundation
import Synchronization

/// The bounded queue between the event loops, which encode receipts, and the writer thread,
/// which appends them to disk. The hot path takes one short lock per frame and never waits on
/// the disk; what happens when the queue is full is the configured policy, and every receipt
/// that is lost is counted and marked in the files.
public final class ReceiptQueue: Sendable {
    private struct State {
        var bytes: [UInt8] = []
        var count = 0
        /// Receipts dropped since the last line in `bytes` (marked as a gap before the next one).
        var gap: UInt64 = 0
    }

    private let state = Mutex(State())
    package let configuration: ReceiptConfiguration
    /// Names this daemon run in decision ids.
    let instance: String
    let sampleRate: Double
    let subjectMode: ReceiptConfiguration.SubjectMode
    private let hasher: (@Sendable (UnsafeRawBufferPointer) -> String)?
    /// Receipts the queue holds before the full policy applies.
    let capacity: Int
    /// The most the queue ever holds (`block` mode admits receipts of requests already read past
    /// `capacity` up to here).
    let hardLimit: Int
    /// The most bytes the queue holds, whatever the count: receipts are bounded in bytes too.
    let byteLimit: Int

    private let queuedCount = Atomic<Int>(0)
    let written = Atomic<UInt64>(0)
    let dropped = Atomic<UInt64>(0)
    private let lastErrorText = Mutex<String>("")

    /// - Parameter hasher: the consent store's keyed subject hash, for `subject: hash`.
    package init(configuration: ReceiptConfiguration, instance: String, hasher: (@Sendable (UnsafeRawBufferPointer) -> String)?) {
        self.configuration = configuration
        self.instance = instance
        sampleRate = configuration.sampleRate
        subjectMode = configuration.subject
        self.hasher = hasher
        capacity = configuration.queueCapacity
        hardLimit = configuration.whenFull == .block ? configuration.queueCapacity * 2 : configuration.queueCapacity
        byteLimit = configuration.queueBytes
    }

    /// Receipts not yet written: waiting in the queue, or taken by the writer and not yet appended.
    public var queued: Int { queuedCount.load(ordering: .relaxed) }
    /// Receipts appended to the files.
    public var writtenCount: UInt64 { written.load(ordering: .relaxed) }
    /// Receipts lost.
    public var droppedCount: UInt64 { dropped.load(ordering: .relaxed) }
    /// The last write error, or "" when the last write succeeded.
    public var lastError: String { lastErrorText.withLock { $0 } }

    /// In `block` mode: the connections should stop reading until the queue drains.
    package var isCongested: Bool { configuration.whenFull == .block && (queued >= capacity || queuedBytes.load(ordering: .relaxed) >= byteLimit / 2) }
    /// In `block` mode: reading may resume.
    package var hasRoom: Bool { queued < capacity / 2 && queuedBytes.load(ordering: .relaxed) < byteLimit / 4 }
    private let queuedBytes = Atomic<Int>(0)

    func subjectHash(_ subject: UnsafeRawBufferPointer) -> String {
        hasher?(subject) ?? ""
    }

    /// Moves the lines of one frame into the queue: as many as fit, the rest dropped and counted.
    func enqueue(_ lines: ReceiptLines) {
        // Counted in receipts (a request's signals line is not one); cut in whole lines.
        let totalReceipts = lines.receiptCount
        let (accepted, lost) = state.withLock { state -> (Int, Int) in
            let room = max(0, hardLimit - state.count)
            let byteRoom = byteLimit - state.bytes.count
            var take = lines.count
            while take > 0 && (lines.receiptsThrough[take - 1] > room || lines.ends[take - 1] > byteRoom) { take -= 1 }
            let receipts = take > 0 ? lines.receiptsThrough[take - 1] : 0
            if take > 0 {
                if state.gap > 0 {
                    ReceiptSchema.appendGap(state.gap, reason: .queueFull, to: &state.bytes)
                    state.gap = 0
                }
                let end = lines.ends[take - 1]
                state.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: lines.bytes[0..<end]))
                state.count += receipts
            }
            state.gap += UInt64(totalReceipts - receipts)
            queuedBytes.store(state.bytes.count, ordering: .relaxed)
            return (receipts, totalReceipts - receipts)
        }
        if accepted > 0 { queuedCount.add(accepted, ordering: .relaxed) }
        if lost > 0 { dropped.add(UInt64(lost), ordering: .relaxed) }
        lines.removeAll()
    }

    /// Takes everything queued (swapping in `spare`, which must be empty) for the writer.
    func take(swapping spare: inout [UInt8]) -> Int {
        let count = state.withLock { state -> Int in
            if state.gap > 0 {
                ReceiptSchema.appendGap(state.gap, reason: .queueFull, to: &state.bytes)
                state.gap = 0
            }
            swap(&state.bytes, &spare)
            queuedBytes.store(0, ordering: .relaxed)
            defer { state.count = 0 }
            return state.count
        }
        // Still counted as queued until the writer has written (or lost) them.
        return count
    }

    /// `count` receipts the writer took were appended to a file.
    func recordWritten(_ count: Int) {
        queuedCount.subtract(count, ordering: .relaxed)
        written.add(UInt64(count), ordering: .relaxed)
        lastErrorText.withLock { if !$0.isEmpty { $0 = "" } }
    }

    /// `count` receipts the writer took were lost (a failed write, no room on the disk).
    package func recordWriteFailure(lost count: Int, error: String) {
        queuedCount.subtract(count, ordering: .relaxed)
        dropped.add(UInt64(count), ordering: .relaxed)
        lastErrorText.withLock { $0 = error }
    }

}
