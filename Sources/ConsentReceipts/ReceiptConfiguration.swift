/// Where decision receipts go and how they are written (`consentd --receipts …`).
public struct ReceiptConfiguration: Sendable, Equatable {
    /// How a receipt names the subject.
    public enum SubjectMode: String, Sendable, CaseIterable {
        /// The subject id as asked.
        case raw
        /// HMAC-SHA256 of the subject id under the consent store's erasure key (hex), the same
        /// keyed hash erasure tombstones carry: pseudonymous, and replayable with the store.
        case hash
        /// No subject at all.
        case omit
    }

    /// What happens when the writer falls behind and the queue is full.
    public enum FullPolicy: String, Sendable, CaseIterable {
        /// Drop the receipt, count it, and mark the gap in the receipts file.
        case drop
        /// Stop reading requests until the queue drains (backpressure); receipts of requests
        /// already read may exceed the queue up to twice its capacity, beyond which they drop.
        case block
    }

    /// The receipts directory; nil: no receipts.
    public var directory: String?
    /// Fraction of decisions that get a receipt (1: every one).
    public var sampleRate: Double = 1
    /// How receipts name the subject: by default its keyed hash, so that once a subject is
    /// erased its receipts cannot be linked to it without the store's key.
    public var subject: SubjectMode = .hash
    /// What to do when the queue is full.
    public var whenFull: FullPolicy = .drop
    /// Receipts the queue holds before `whenFull` applies.
    public var queueCapacity = 65_536
    /// Bytes the queue holds at most, whatever the count (a receipt line is a few hundred bytes).
    public var queueBytes = 64 << 20
    /// A receipts file is closed and a new one started past this many bytes.
    public var maximumFileSize = 64 << 20
    /// Retention by size: the receipts files (compressed once closed) are kept within this many
    /// bytes by retiring the oldest; 0: no budget.
    public var retentionBytes = 0
    /// Retention by age: closed receipts files last written longer ago than this are retired;
    /// 0: kept for ever.
    public var retentionDays: Double = 0
    /// Receipts stop (counted as dropped, and marked in the files) while the receipts file
    /// system has less free space than this, so that they never take the last of a disk the
    /// consent store may share.
    public var minimumFreeBytes = 1 << 30
    /// Tests only: every receipts file is this existing file instead (`/dev/full`: a disk that
    /// fails every write). Opened as it is: never created, never narrowed.
    package var writeEveryFileTo: String?

    /// Receipts off.
    public init() {}

    /// What is wrong with these settings, one line per problem (empty: none).
    package func problems() -> [String] {
        var problems: [String] = []
        if let directory, directory.isEmpty { problems.append("receipts: the receipts directory must not be empty") }
        if !(sampleRate > 0 && sampleRate <= 1) { problems.append("receipt-sample-rate: must be greater than 0 and at most 1") }
        if queueCapacity < 16 || queueCapacity > 1 << 24 { problems.append("receipt-queue: must be between 16 and 16777216 receipts") }
        if maximumFileSize < 4096 { problems.append("receipt-file-size: must be at least 4096 bytes") }
        if queueBytes < 1 << 16 { problems.append("receipt-queue-bytes: must be at least 65536") }
        if retentionBytes < 0 || (retentionBytes > 0 && retentionBytes < 4 * maximumFileSize) {
            problems.append("receipt-retention-bytes: must be 0 (no budget) or at least 4 × receipt-file-size (\(4 * maximumFileSize)): the file being written, one closed file being compressed and its copy fit beside the kept files")
        }
        if !(retentionDays >= 0 && retentionDays <= 36_500) { problems.append("receipt-retention-days: must be between 0 (kept for ever) and 36500") }
        if minimumFreeBytes < 0 { problems.append("receipt-min-free-bytes: must not be negative") }
        return problems
    }
}
