import ArgumentParser
import ConsentModel
import ConsentStore
import ConsentWire
import Foundation

/// `consentctl consent history SUBJECT`
struct ConsentHistory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show every consent record of a subject, in store order, or its state at a past instant.",
        discussion: """
        With --at T, shows the records the store knew at T (stored and made by then), each marked \
        valid or expired at T: the state a decision made at T relied on.
        """
    )

    @Argument(help: "The data subject's id.")
    var subject: String

    @Option(help: "Show the state as of this RFC 3339 instant.")
    var at: String?

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        var instant: Timestamp?
        if let at {
            guard let parsed = Timestamp(rfc3339: at) else { throw ValidationError("--at '\(at)' is not an RFC 3339 time") }
            instant = parsed
        }
        let records: [ConsentRecord]
        let erasures: [ErasureTombstone]
        if let client = try storeOptions.client() {
            let history = try daemonCall { try client.history(subject: subject, at: instant) }
            records = history.records.map { wire in
                var record = (try? wire.model(now: .now())) ?? ConsentRecord(subject: subject, purpose: wire.purpose, choice: .deny, recordedAt: wire.recordedAt.model)
                record.sequence = wire.sequence
                return record
            }
            erasures = history.erasures.map { ErasureTombstone(sequence: $0.sequence, subjectHash: $0.subjectHash, erasedAt: $0.erasedAt.model, recordCount: Int($0.recordCount)) }
        } else {
            let store = try storeOptions.open()
            records = try instant.map { try store.history(of: subject, asOf: $0) } ?? store.history(of: subject)
            erasures = try store.erasures(of: subject)
        }
        switch format {
        case .json:
            let lines = records.map { record -> String in
                var line = JSONLines.line(for: record)
                if let instant {
                    line.removeLast()
                    line += ",\"valid\":\(record.expiresAt.map { instant < $0 } ?? true)}"
                }
                return line
            }
            print("[" + lines.joined(separator: ",\n ") + "]")
        case .text:
            if records.isEmpty {
                print("no records for \(subject)" + (instant.map { " as of \($0)" } ?? ""))
            }
            for record in records {
                var line = "#\(record.sequence)  \(record.recordedAt)  \(record.choice)  \(record.purpose)"
                if let data = record.dataCategory { line += " [\(data)]" }
                if let expires = record.expiresAt { line += "  expires \(expires)" }
                line += "  via \(record.source)"
                if let notice = record.noticeVersion { line += "  notice \(notice)" }
                if record.legalBasis != .consent { line += "  basis \(record.legalBasis)" }
                if let jurisdiction = record.jurisdiction { line += "  in \(jurisdiction)" }
                if let evidence = record.evidence { line += "  evidence \(evidence)" }
                if let instant { line += (record.expiresAt.map { instant < $0 } ?? true) ? "  (valid)" : "  (expired)" }
                print(line)
            }
            for erasure in erasures {
                print("erased at \(erasure.erasedAt): \(erasure.recordCount) records (#\(erasure.sequence))")
            }
        }
    }
}
