import ConsentModel
import Foundation

/// Options for `RecordTransfer.importRecords`.
public struct ImportOptions: Sendable {
    /// File format; nil guesses from the extension.
    public var format: RecordFormat?
    /// All or nothing: the first bad line aborts the import and nothing is stored.
    public var strict = false
    /// Records per transaction when not strict.
    public var batchSize = 10_000
    /// Extra validation (e.g. taxonomy keys): a message rejects the record.
    public var validate: (@Sendable (ConsentRecord) -> String?)?

    /// Default options.
    public init(format: RecordFormat? = nil, strict: Bool = false, batchSize: Int = 10_000, validate: (@Sendable (ConsentRecord) -> String?)? = nil) {
        self.format = format
        self.strict = strict
        self.batchSize = batchSize
        self.validate = validate
    }
}

/// What an import did.
public struct ImportSummary: Sendable {
    /// Records stored.
    public var imported = 0
    /// Lines rejected.
    public var rejected = 0
    /// Lines read (excluding blank lines and a CSV header).
    public var lines = 0
    /// The store sequence after the last commit.
    public var lastSequence: UInt64 = 0
    /// Wall-clock seconds.
    public var seconds = 0.0
}

/// Progress of a running import or export.
public struct TransferProgress: Sendable {
    /// Records so far.
    public var records: Int
    /// Bytes read so far (imports) and the file size, when known.
    public var bytes: Int
    public var totalBytes: Int?

    /// Creates a progress value.
    public init(records: Int, bytes: Int, totalBytes: Int?) {
        self.records = records
        self.bytes = bytes
        self.totalBytes = totalBytes
    }
}

/// Streaming import and export of consent records (JSON Lines or CSV).
public enum RecordTransfer {
    /// Imports a file into the store in batches (one transaction each) or, with `strict`, in one
    /// transaction. Bad lines are reported to `onReject` and skipped (strict: the import fails).
    /// `onCommit` is called after each durable commit with the last sequence and the batch size.
    public static func importRecords(
        from path: String, into store: any ConsentStorage, options: ImportOptions = ImportOptions(),
        onReject: @escaping (RecordLineError) -> Void = { _ in },
        onCommit: (UInt64, Int) -> Void = { _, _ in },
        onProgress: (TransferProgress) -> Void = { _ in }
    ) throws -> ImportSummary {
        let file = try RecordFileReader(path: path, options: options, onReject: onReject)
        var batch: [ConsentRecord] = []
        batch.reserveCapacity(min(options.batchSize, 100_000))
        func flush(_ append: ([ConsentRecord]) throws -> [UInt64]) throws {
            guard !batch.isEmpty else { return }
            let sequences = try append(batch)
            file.summary.imported += batch.count
            file.summary.lastSequence = sequences.last ?? file.summary.lastSequence
            batch.removeAll(keepingCapacity: true)
        }
        if options.strict {
            try store.importTransaction(now: .now()) { append in
                while let next = try file.next() {
                    if let record = next { batch.append(record) }
                    if batch.count >= 50_000 { try flush(append) }
                    if file.lineNumber % 8192 == 0 { onProgress(file.progress(pending: batch.count)) }
                }
                try flush(append)
            }
            if file.summary.imported > 0 { onCommit(file.summary.lastSequence, file.summary.imported) }
        } else {
            var done = false
            while !done {
                var committed = 0
                try store.importTransaction(now: .now()) { append in
                    while batch.count < options.batchSize {
                        guard let next = try file.next() else { done = true; break }
                        if let record = next { batch.append(record) }
                    }
                    committed = batch.count
                    try flush(append)
                }
                if committed > 0 { onCommit(file.summary.lastSequence, committed) }
                onProgress(file.progress(pending: 0))
            }
        }
        return try file.finish()
    }

    /// Imports a file through `send` (e.g. RecordConsent requests to the daemon), one batch per
    /// call; `send` returns the last sequence it stored. With `strict`, the whole file is checked
    /// first and nothing is sent if any line is bad (the batches are then not one transaction).
    public static func importRecords(
        from path: String, options: ImportOptions = ImportOptions(), send: ([ConsentRecord]) throws -> UInt64,
        onReject: @escaping (RecordLineError) -> Void = { _ in },
        onCommit: (UInt64, Int) -> Void = { _, _ in },
        onProgress: (TransferProgress) -> Void = { _ in }
    ) throws -> ImportSummary {
        if options.strict {
            let check = try RecordFileReader(path: path, options: options, onReject: onReject)
            while try check.next() != nil {}
            _ = try check.finish()
        }
        let file = try RecordFileReader(path: path, options: options, onReject: onReject)
        var batch: [ConsentRecord] = []
        var done = false
        while !done {
            while batch.count < options.batchSize {
                guard let next = try file.next() else { done = true; break }
                if let record = next { batch.append(record) }
            }
            if !batch.isEmpty {
                file.summary.lastSequence = try send(batch)
                file.summary.imported += batch.count
                onCommit(file.summary.lastSequence, batch.count)
                batch.removeAll(keepingCapacity: true)
            }
            onProgress(file.progress(pending: 0))
        }
        return try file.finish()
    }

    /// Writes every record of the store, in sequence order, to `path`; returns the count.
    public static func exportRecords(from store: any ConsentStorage, to path: String, format: RecordFormat? = nil, onProgress: (TransferProgress) -> Void = { _ in }) throws -> Int {
        try writeRecords(to: path, format: format, onProgress: onProgress) { emit in try store.forEachRecord(emit) }
    }

    /// Writes records from any sequence (e.g. a synthetic population) to `path`; returns the count.
    public static func write(_ records: some Sequence<ConsentRecord>, to path: String, format: RecordFormat? = nil, onProgress: (TransferProgress) -> Void = { _ in }) throws -> Int {
        try writeRecords(to: path, format: format, onProgress: onProgress) { emit in
            for record in records { try emit(record) }
        }
    }

    private static func writeRecords(to path: String, format: RecordFormat?, onProgress: (TransferProgress) -> Void, _ produce: ((ConsentRecord) throws -> Void) throws -> Void) throws -> Int {
        let format = format ?? RecordFormat.guess(path)
        let writer = try TextWriter(path: path)
        var count = 0
        if format == .csv { try writer.write(line: CSVRecords.header) }
        try withoutActuallyEscaping(onProgress) { onProgress in
            try produce { record in
                try writer.write(line: format == .csv ? CSVRecords.row(for: record) : JSONLines.line(for: record))
                count += 1
                if count % 65_536 == 0 { onProgress(TransferProgress(records: count, bytes: 0, totalBytes: nil)) }
            }
        }
        try writer.close()
        return count
    }
}

/// Reads consent records from a JSON Lines or CSV file, one at a time, reporting bad lines.
final class RecordFileReader {
    let path: String
    let options: ImportOptions
    let reader: LineReader
    let totalBytes: Int?
    let format: RecordFormat
    let onReject: (RecordLineError) -> Void
    let started = DispatchTime.now()
    var summary = ImportSummary()
    private var csv: CSVRecords?
    private var pendingCSV: (text: String, line: Int)?

    init(path: String, options: ImportOptions, onReject: @escaping (RecordLineError) -> Void) throws {
        self.path = path
        self.options = options
        self.reader = try LineReader(path: path)
        self.totalBytes = LineReader.size(of: path)
        self.format = options.format ?? RecordFormat.guess(path)
        self.onReject = onReject
    }

    var lineNumber: Int { reader.lineNumber }

    func progress(pending: Int) -> TransferProgress {
        TransferProgress(records: summary.imported + pending, bytes: reader.bytesRead, totalBytes: totalBytes)
    }

    /// nil at the end of the file; `.some(nil)` for a skipped line; `.some(record)` otherwise.
    func next() throws -> ConsentRecord?? {
        try reader.next { bytes -> ConsentRecord? in
            if bytes.allSatisfy({ $0 == 32 || $0 == 9 }) && pendingCSV == nil { return nil }
            let line = reader.lineNumber
            do {
                // Identity is bytes: a line that is not valid UTF-8 is refused, never decoded
                // with replacement characters (two different raw ids would become one).
                if String(validating: bytes, as: UTF8.self) == nil {
                    // A line of the data (not the CSV header, which fails the import): counted
                    // and refused, with the quoted CSV record it continued, if any.
                    if format == .jsonl || csv != nil { summary.lines += 1 }
                    pendingCSV = nil
                    throw RecordLineError(line: line, message: "the line is not valid UTF-8; nothing on it was read")
                }
                switch format {
                case .jsonl:
                    summary.lines += 1
                    return try check(JSONLines.record(from: bytes, lineNumber: line), line: line)
                case .csv:
                    var text = String(decoding: bytes, as: UTF8.self)
                    var first = line
                    if let pending = pendingCSV { text = pending.text + "\n" + text; first = pending.line; pendingCSV = nil }
                    if CSVRecords.isIncomplete(text) { pendingCSV = (text, first); return nil }
                    guard let header = csv else {
                        csv = try CSVRecords(header: text)
                        return nil
                    }
                    summary.lines += 1
                    return try check(header.record(from: text, lineNumber: first), line: first)
                }
            } catch let error as RecordLineError {
                if csv == nil && format == .csv { throw StoreError(.file, "\(path): \(error)") }
                if options.strict { throw StoreError(.invalidRecord, "\(path): \(error); nothing was imported (--strict)") }
                summary.rejected += 1
                onReject(error)
                return nil
            }
        }
    }

    private func check(_ record: ConsentRecord, line: Int) throws -> ConsentRecord {
        if let message = options.validate?(record) { throw RecordLineError(line: line, message: message) }
        return record
    }

    /// Reports a dangling quoted CSV field and fills in the timing.
    func finish() throws -> ImportSummary {
        if let pending = pendingCSV {
            let error = RecordLineError(line: pending.line, message: "unterminated quoted field at the end of the file")
            if options.strict { throw StoreError(.invalidRecord, "\(path): \(error)") }
            summary.rejected += 1
            onReject(error)
            pendingCSV = nil
        }
        if format == .csv && csv == nil { throw StoreError(.file, "\(path): empty CSV file (no header row)") }
        summary.seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        return summary
    }
}
