import ArgumentParser
import ConsentModel
import ConsentStore
import ConsentWire
import PolicyEngine

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
            let hint = unansweredWriteHint(subject: subject, socket: storeOptions.socket ?? "", idempotencyKey: idempotencyKey,
                                           retry: "the same --idempotency-key \(idempotencyKey ?? "") and --at \(record.recordedAt)")
            let result = try daemonCall(onTimeout: hint) { try client.record([record], idempotencyKey: idempotencyKey) }
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
            let result = try store.append([record], idempotencyKey: idempotencyKey, payload: nil, now: .now())
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

/// `consentctl consent signal`
struct ConsentSignal: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signal",
        abstract: "Store the choices a CMP's signal string records for a subject (TC string, GPP, US Privacy).",
        discussion: """
        Syncs a consent banner's choices into the store. A TC string (--tc-string, or the TCF \
        section of a --gpp string) becomes, for each purpose key the taxonomy maps to TCF \
        purposes (tcf_purposes), a grant when the string grants it to the vendor (--vendor, \
        default the taxonomy's tcf_vendor_id) or a deny, recorded at the string's LastUpdated — \
        and with a grant, a deny for each data category whose special feature the string does \
        not opt in to. A US opt-out of sale or sharing (--us-privacy 1YYN, or a GPP US section) \
        becomes a deny, now, for each purpose key marked sale_or_sharing; a string that opts out \
        of nothing stores nothing. Source: tcf, gpp or usp; evidence: the string. Needs the \
        policy taxonomy (--policies, default ./Policies) or, with --socket, the daemon's.
        """
    )

    @Argument(help: "The data subject's id.") var subject: String
    @Option(name: .customLong("tc-string"), help: "A TCF v2 TC string.") var tcString: String?
    @Option(name: .customLong("gpp"), help: "A GPP string.") var gpp: String?
    @Option(name: .customLong("us-privacy"), help: "A US Privacy string.") var usPrivacy: String?
    @Option(help: ArgumentHelp("The TCF vendor the TC string is read for (default: the taxonomy's tcf_vendor_id).", valueName: "id")) var vendor: UInt32?
    @Option(help: "The jurisdiction the choice was made in (ISO 3166).") var jurisdiction: String?
    @Option(help: "The version of your notice the CMP showed (rules' min_notice_version apply to the records).") var noticeVersion: UInt32?
    @Option(help: "Store at most once per key: a repeat returns the first result.") var idempotencyKey: String?
    @OptionGroup var storeOptions: StoreOptions

    func validate() throws {
        let given = [tcString, gpp, usPrivacy].compactMap { $0 }.count
        guard given == 1 else { throw ValidationError("give exactly one of --tc-string, --gpp and --us-privacy") }
        if let vendor, vendor < 1 || vendor > RequestContext.maximumTCFVendorId {
            throw ValidationError("--vendor must be a TCF vendor id (1 to \(RequestContext.maximumTCFVendorId))")
        }
    }

    func run() throws {
        let signal = SignalConsent(
            subject: subject, tcString: tcString, gppString: gpp, usPrivacy: usPrivacy, tcfVendorId: vendor,
            jurisdiction: jurisdiction, noticeVersion: noticeVersion
        )
        if let client = try storeOptions.client() {
            let hint = unansweredWriteHint(subject: subject, socket: storeOptions.socket ?? "", idempotencyKey: idempotencyKey, retry: "the same --idempotency-key \(idempotencyKey ?? "")")
            let result = try daemonCall(onTimeout: hint) { try client.record(signal: signal, idempotencyKey: idempotencyKey) }
            let sequences = result.sequences.map { "#\($0)" }.joined(separator: ", ")
            print(result.sequences.isEmpty ? "nothing to store: the string records no choice for \(subject) under the daemon's policies"
                  : "\(result.replayed ? "already recorded" : "recorded") \(sequences) for \(subject) (through \(storeOptions.socket!))")
            return
        }
        let directory = storeOptions.policies ?? "Policies"
        let loaded = try LoadedPolicies.load(directory, vocabulary: Vocabulary())
        guard let set = loaded.result.policySet else {
            printError("consentctl: the policies in \(directory) do not compile, so the string's records cannot be named:\n\(loaded.result.diagnostics.text)")
            throw ExitCode(1)
        }
        let records: [ConsentRecord]
        do {
            records = try set.records(implying: signal, now: .now())
        } catch {
            printError("consentctl: \(error.message)")
            throw ExitCode(1)
        }
        let store = try storeOptions.open()
        do {
            // Fingerprinted as the daemon fingerprints the same signal, so a retry matches.
            let payload = idempotencyKey == nil ? nil : try Consentd_V1_SignalConsent(signal).idempotencyPayload()
            let result = try store.append(records, idempotencyKey: idempotencyKey, payload: payload, now: .now())
            if records.isEmpty {
                print("nothing to store: the string records no choice for \(subject) under \(directory)")
                return
            }
            if result.replayed {
                print("already recorded under this key: \(result.sequences.map { "#\($0)" }.joined(separator: ", ")) for \(subject)")
                return
            }
            print("recorded \(result.sequences.count) records for \(subject):")
            for (sequence, record) in zip(result.sequences, records) {
                print("  #\(sequence): \(record.choice) \(record.purpose)\(record.dataCategory.map { " [\($0)]" } ?? "") at \(record.recordedAt) via \(record.source)")
            }
        } catch let error as StoreError {
            printError("consentctl: \(error)")
            throw ExitCode(error.code == .invalidRecord ? 1 : 74)
        }
    }
}
