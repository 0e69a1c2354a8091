import ArgumentParser
import ConsentModel
import ConsentStore
import ConsentWorkload
import Foundation
import PolicyEngine

extension RecordFormat: ExpressibleByArgument {}

/// A one-line progress display on standard error, only when it is a terminal.
struct ProgressLine {
    let enabled = isatty(2) == 1
    var lastDraw: UInt64 = 0
    let started = DispatchTime.now().uptimeNanoseconds

    mutating func draw(_ verb: String, _ progress: TransferProgress) {
        guard enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard now - lastDraw > 100_000_000 else { return }
        lastDraw = now
        let rate = Double(progress.records) / max(0.001, Double(now - started) / 1e9)
        var text = "\r\(verb) \(progress.records) records (\(Int(rate))/s)"
        if let total = progress.totalBytes, total > 0 { text += String(format: " %.0f%%", 100 * Double(progress.bytes) / Double(total)) }
        FileHandleWriter.write(text + "\u{1B}[K", fd: 2)
    }

    func clear() {
        if enabled { FileHandleWriter.write("\r\u{1B}[K", fd: 2) }
    }

    static func clearLine() {
        if isatty(2) == 1 { FileHandleWriter.write("\r\u{1B}[K", fd: 2) }
    }
}

/// `consentctl consent import FILE`
struct ConsentImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import consent records from JSON Lines or CSV, streaming.",
        discussion: """
        JSON Lines: one object per line with keys subject, purpose, choice, at (required) and data, \
        expires, basis, source, notice_version, jurisdiction, evidence (a `sequence` key, as export \
        writes, is ignored: the store assigns sequences). CSV: a header row naming those columns. \
        A malformed line is reported with its line number and skipped; the rest is imported in \
        batches, each committed durably. With --strict the whole file is one transaction and the \
        first bad line aborts it, storing nothing. With --socket the records go through the \
        daemon, one RecordConsent per batch (the daemon checks keys against its policies; with \
        --strict the file is checked completely before anything is sent). Exit status: 0 all \
        imported, 2 some lines rejected, 1 nothing imported because of an error.
        """
    )

    @Argument(help: "The file to import.")
    var file: String

    @Option(help: "jsonl or csv (default: from the file name).")
    var format: RecordFormat?

    @Flag(help: "All or nothing: abort on the first bad line.")
    var strict = false

    @Option(help: "Records per transaction.")
    var batchSize = 10_000

    @Flag(help: "Print a line to standard output after every durable commit.")
    var printCommits = false

    @OptionGroup var storeOptions: StoreOptions

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        let client = try storeOptions.client()
        let check = try storeOptions.taxonomyCheck()
        var progress = ProgressLine()
        let options = ImportOptions(format: format, strict: strict, batchSize: batchSize, validate: check)
        let onReject: (RecordLineError) -> Void = { error in
            ProgressLine.clearLine()
            printError("\(file):\(error.line): error: \(error.message)")
        }
        let onCommit: (UInt64, Int) -> Void = { sequence, count in
            if printCommits { FileHandleWriter.write("committed \(count) records through sequence \(sequence)\n", fd: 1) }
        }
        do {
            let summary: ImportSummary
            if let client {
                // Through the daemon: one RecordConsent per batch; the daemon checks keys against its taxonomy.
                summary = try RecordTransfer.importRecords(
                    from: file, options: options,
                    send: { batch in try daemonCall { try client.record(batch) }.sequences.last ?? 0 },
                    onReject: onReject, onCommit: onCommit, onProgress: { progress.draw("importing", $0) }
                )
            } else {
                summary = try RecordTransfer.importRecords(
                    from: file, into: try storeOptions.open(), options: options,
                    onReject: onReject, onCommit: onCommit, onProgress: { progress.draw("importing", $0) }
                )
            }
            progress.clear()
            let rate = Double(summary.imported) / max(summary.seconds, 0.000_001)
            print("imported \(summary.imported) records, rejected \(summary.rejected) of \(summary.lines) lines in \(String(format: "%.2f", summary.seconds)) s (\(Int(rate)) records/s)"
                  + (summary.imported > 0 ? "; store sequence \(summary.lastSequence)" : "; nothing was stored"))
            if summary.rejected > 0 { throw ExitCode(2) }
        } catch let error as StoreError {
            progress.clear()
            printError("consentctl: \(error)")
            throw ExitCode(1)
        }
    }
}

/// `consentctl consent export FILE`
struct ConsentExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export every consent record, in store order, to JSON Lines or CSV.",
        discussion: "The output imports back with `consent import`."
    )

    @Argument(help: "The file to write.")
    var file: String

    @Option(help: "jsonl or csv (default: from the file name).")
    var format: RecordFormat?

    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        let store = try storeOptions.open()
        var progress = ProgressLine()
        do {
            let started = DispatchTime.now().uptimeNanoseconds
            let count = try RecordTransfer.exportRecords(from: store, to: file, format: format) { progress.draw("exporting", $0) }
            progress.clear()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            print("exported \(count) records to \(file) in \(String(format: "%.2f", seconds)) s")
        } catch let error as StoreError {
            progress.clear()
            printError("consentctl: \(error)")
            throw ExitCode(1)
        }
    }
}

/// `consentctl consent generate --subjects N --seed S --out FILE`
struct ConsentGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a synthetic consent population over a policy taxonomy, for load tests.",
        discussion: """
        Each subject (customer-0000000000, customer-0000000001, …) gets 1 to 5 records over the two \
        years before --now: mostly grants, some withdrawals, some narrowed to a data category, some \
        expiring. The same seed gives the same file. Import it with `consent import`.
        """
    )

    @Option(help: "Number of subjects.")
    var subjects: Int

    @Option(help: "Seed of the generator.")
    var seed: UInt64 = 1

    @Option(help: "The file to write (.jsonl or .csv).")
    var out: String

    @Option(help: "jsonl or csv (default: from the file name).")
    var format: RecordFormat?

    @Option(help: "Policy directory whose taxonomy the records use.")
    var policies = "Policies"

    @Option(help: "Records are made in the two years before this instant (default now).")
    var now: String?

    func validate() throws {
        guard subjects >= 0 else { throw ValidationError("--subjects must not be negative") }
        if let now, Timestamp(rfc3339: now) == nil { throw ValidationError("--now '\(now)' is not an RFC 3339 time") }
    }

    func run() throws {
        let loaded = try LoadedPolicies.load(policies, vocabulary: Vocabulary())
        guard let set = loaded.result.policySet else {
            print(loaded.result.diagnostics.text)
            throw ExitCode(1)
        }
        let population = SyntheticPopulation(
            purposes: set.purposes.keys, dataCategories: set.dataCategories.keys, subjects: subjects, seed: seed,
            now: now.flatMap { Timestamp(rfc3339: $0) } ?? .now()
        )
        var progress = ProgressLine()
        do {
            let count = try RecordTransfer.write(population.lazy.map { record in
                var record = record
                record.sequence = 0
                return record
            }, to: out, format: format) { progress.draw("generating", $0) }
            progress.clear()
            print("wrote \(count) records for \(subjects) subjects to \(out)")
        } catch let error as StoreError {
            progress.clear()
            printError("consentctl: \(error)")
            throw ExitCode(1)
        }
    }
}
