import ArgumentParser
import ConsentReceipts
import ConsentStore
import Foundation

/// `consentctl receipts …`
struct ReceiptsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receipts",
        abstract: "Work with the decision receipts a daemon wrote with --receipts.",
        subcommands: [ReceiptsReplay.self]
    )
}

/// `consentctl receipts replay DIR`
struct ReceiptsReplay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-decide every receipt and report each one whose decision cannot be reproduced.",
        discussion: """
        Each receipt is decided again with the policy set of its revision (compiled from the \
        sources the daemon kept in DIR/policies/<revision>, or from --policies when that \
        directory is the same revision) and the subject's consent records up to the store \
        sequence the receipt names, at the receipt's instant. Decision, reason, rule and the \
        consent record relied on must all match. A clean replay (exit 0) is the proof that every \
        written receipt was decided as recorded.

        The files carry a hash chain: every block the daemon appended is sealed with the SHA-256 \
        of the block and of the seal before it, across files and restarts. A deleted, inserted, \
        altered or reordered line, or a removed block or file, is reported at its lines as a \
        mismatch.

        Reported besides mismatches: receipts the daemon lost (gap markers: queue full or a failed \
        write), lines no seal covers (a failed write's remains, a tail the daemon never sealed), \
        and receipts that cannot be re-decided by design (the subject was erased after the \
        decision, or the receipts omit the subject). --strict makes those fail too.

        Replay a stopped daemon's directory, or a copy of it: a running daemon compresses and \
        retires files under the replay. Files retired under the retention policy are reported as \
        retired (the store's record is the proof); a file retired unreadable, and a file that \
        cannot be read now, are mismatches, and the replay goes on past them.

        Exit status: 0 clean, 1 mismatches (or, with --strict, gaps or unverifiable receipts), \
        66 when DIR or the store cannot be read.
        """
    )

    @Argument(help: "The receipts directory.") var directory: String
    @Option(help: "The consent store the daemon served: an SQLite file or a PostgreSQL URI.") var store = "consentd.sqlite"
    @Option(help: "A policy directory to use for revisions whose sources are not in the receipts directory.") var policies: String?
    @Flag(help: "Also fail on lost receipts and on receipts that cannot be re-decided.") var strict = false
    @Option(help: "Print at most this many findings.") var limit = 50

    func run() throws {
        guard PostgresAddress.isPostgres(store) || FileManager.default.fileExists(atPath: store) else {
            printError("consentctl: no consent store at \(store) (give --store)")
            throw ExitCode(66)
        }
        let report: ReceiptReplayReport
        do {
            let opened = try ConsentStores.open(store)
            var printed = 0
            report = try ReceiptReplayer(directory: directory, store: opened, fallbackPolicies: policies).run { finding, isMismatch in
                guard isMismatch || strict || finding.message.hasPrefix("hash chain:"), printed < limit else { return }
                printed += 1
                print("\(isMismatch ? "MISMATCH" : "unverifiable") \(finding)")
            }
        } catch {
            printError("consentctl: \(error)")
            throw ExitCode(66)
        }
        let files = report.files.count
        print("\(report.receipts) receipts in \(files) file\(files == 1 ? "" : "s"), \(report.revisions.count) policy revision\(report.revisions.count == 1 ? "" : "s"): \(report.matched) reproduced, \(report.mismatches.count) mismatched, \(report.unverifiable.count) not re-decidable")
        print("hash chain: \(report.sealedBlocks) sealed block\(report.sealedBlocks == 1 ? "" : "s") checked, \(report.unsealed.count) unsealed stretch\(report.unsealed.count == 1 ? "" : "es")")
        if let first = report.retired.first, let last = report.retired.last {
            let range = first.file == last.file ? first.file : "\(first.file) … \(last.file)"
            print("retired: \(report.retired.count) file\(report.retired.count == 1 ? "" : "s") (\(range)) with \(report.retiredReceipts) receipts, deleted under the retention policy (recorded in the store; the hash chain runs through them)")
        }
        if !report.unverifiable.isEmpty && !strict {
            var reasons: [String: Int] = [:]
            for finding in report.unverifiable { reasons[finding.message.components(separatedBy: " (").first ?? finding.message, default: 0] += 1 }
            for (reason, count) in reasons.sorted(by: { $0.value > $1.value }) { print("  not re-decidable: \(count) × \(reason)") }
        }
        for (reason, count) in report.dropped.sorted(by: { $0.key < $1.key }) {
            print("  LOST: \(count) receipts were never written (\(reason)); the daemon counted and marked them")
        }
        if !report.isClean {
            print("replay FAILED: \(report.mismatches.count) receipt\(report.mismatches.count == 1 ? "" : "s") cannot be reproduced")
            throw ExitCode(1)
        }
        if strict && (report.droppedTotal > 0 || !report.unverifiable.isEmpty || !report.unsealed.isEmpty) {
            print("replay incomplete (--strict): \(report.droppedTotal) lost, \(report.unverifiable.count) not re-decidable, \(report.unsealed.count) unsealed stretches")
            throw ExitCode(1)
        }
        print("replay clean: every written receipt was reproduced")
    }
}
