import ArgumentParser
import ConsentModel
import ConsentStore

/// Options of `consent grant|deny|withdraw`.
struct RecordOptions: ParsableArguments {
    @Argument(help: "The data subject's id.")
    var subject: String

    @Argument(help: "The purpose key; the choice covers it and every purpose below it.")
    var purpose: String

    @Option(help: "Narrow the choice to this data category (and its descendants).")
    var data: String?

    @Option(help: "When the choice stops counting (RFC 3339).")
    var expires: String?

    @Option(help: "When the customer made the choice (RFC 3339; default now).")
    var at: String?

    @Option(help: "Legal basis recorded with the choice: consent, contract, legal_obligation, legitimate_interest, vital_interest, public_task.")
    var basis = "consent"

    @Option(help: "Where the choice came from: web, app, import, gpc, tcf, …")
    var source = "cli"

    @Option(help: "The version of the notice the customer was shown.")
    var noticeVersion: UInt32?

    @Option(help: "The jurisdiction the choice was made in (ISO 3166).")
    var jurisdiction: String?

    @Option(help: "An opaque reference to the evidence (form id, TC string, …).")
    var evidence: String?

    @Option(help: "Store at most once per key: a repeat returns the first result.")
    var idempotencyKey: String?

    @OptionGroup var storeOptions: StoreOptions

    func record(_ choice: Choice) throws -> ConsentRecord {
        guard let basis = LegalBasis(name: basis) else {
            throw ValidationError("unknown --basis '\(basis)'; one of: \(LegalBasis.allCases.map(\.description).joined(separator: ", "))")
        }
        func time(_ text: String?, _ flag: String) throws -> Timestamp? {
            guard let text else { return nil }
            guard let value = Timestamp(rfc3339: text) else { throw ValidationError("--\(flag) '\(text)' is not an RFC 3339 time, e.g. 2026-06-01T00:00:00Z") }
            return value
        }
        return ConsentRecord(
            subject: subject, purpose: purpose, dataCategory: data, choice: choice,
            recordedAt: try time(at, "at") ?? .now(), expiresAt: try time(expires, "expires"), legalBasis: basis,
            source: source, noticeVersion: noticeVersion, jurisdiction: jurisdiction, evidence: evidence
        )
    }

    func run(_ choice: Choice) throws {
        let record = try record(choice)
        if let client = try storeOptions.client() {
            let result = try daemonCall { try client.record([record], idempotencyKey: idempotencyKey) }
            let sequence = result.sequences.first.map { "#\($0)" } ?? "-"
            let scope = record.dataCategory.map { " [\($0)]" } ?? ""
            print("\(result.replayed ? "already recorded" : "recorded") \(sequence): \(choice) \(record.purpose)\(scope) for \(record.subject) at \(record.recordedAt) (through \(storeOptions.socket!))")
            return
        }
        if let check = try storeOptions.taxonomyCheck(), let problem = check(record) {
            printError("consentctl: \(problem)")
            throw ExitCode(1)
        }
        let store = try storeOptions.open()
        do {
            let result = try store.append([record], idempotencyKey: idempotencyKey)
            let sequence = result.sequences.first.map { "#\($0)" } ?? "-"
            let scope = record.dataCategory.map { " [\($0)]" } ?? ""
            print("\(result.replayed ? "already recorded" : "recorded") \(sequence): \(choice) \(record.purpose)\(scope) for \(record.subject) at \(record.recordedAt)")
        } catch let error as StoreError {
            printError("consentctl: \(error)")
            throw ExitCode(error.code == .invalidRecord ? 1 : 74)
        }
    }
}

/// `consentctl consent grant`
struct ConsentGrant: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "grant", abstract: "Record that the subject agreed to a purpose (opt-in).")
    @OptionGroup var options: RecordOptions
    func run() throws { try options.run(.grant) }
}

/// `consentctl consent deny`
struct ConsentDeny: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deny", abstract: "Record that the subject refused a purpose (opt-out).")
    @OptionGroup var options: RecordOptions
    func run() throws { try options.run(.deny) }
}

/// `consentctl consent withdraw`
struct ConsentWithdraw: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "withdraw",
        abstract: "Record that the subject withdrew consent (a newer deny record; history is kept).",
        discussion: "A withdrawal of a broad purpose overrides earlier grants of every purpose below it."
    )
    @OptionGroup var options: RecordOptions
    func run() throws { try options.run(.deny) }
}
