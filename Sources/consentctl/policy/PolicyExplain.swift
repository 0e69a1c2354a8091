import ArgumentParser
import ConsentModel
import Foundation
import PolicyEngine

/// `consentctl policy explain DIR --subject S --purpose P --data D …`
struct PolicyExplain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Decide one request offline and show the full trace.",
        discussion: """
        Prints the decision, its reason, the deciding rule (file:line), the consent record relied \
        on, every rule of the set with why it did or did not apply, and every consent record of \
        the subject with whether it covered the request and counted. Consent records come from \
        --consent FILE: a YAML/JSON list of records in the policy-test format \
        ({subject, purpose, data, choice, at, expires, notice_version, source, basis}), or a \
        document with such a list under `consent:`.
        """
    )

    @Argument(help: "The policy directory.")
    var directory: String = "Policies"

    @Option(help: "The data subject's id.")
    var subject: String

    @Option(help: "The purpose key, e.g. marketing.advertising.targeted.")
    var purpose: String

    @Option(help: "The data category key, e.g. user.behavior.browsing.")
    var data: String

    @Option(help: "ISO 3166 code of where the use happens, e.g. DE or US-CA.")
    var jurisdiction: String?

    @Flag(help: "A Global Privacy Control signal accompanies the request.")
    var gpc = false

    @Flag(help: "A US Privacy opt-out of sale accompanies the request.")
    var uspOptOut = false

    @Option(help: "The channel of the use, e.g. web or app.")
    var channel: String?

    @Option(help: "Decide at this RFC 3339 instant instead of now.")
    var at: String?

    @Option(help: "A file of consent records to decide against.")
    var consent: String?

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    func validate() throws {
        if let at, Timestamp(rfc3339: at) == nil {
            throw ValidationError("--at '\(at)' is not an RFC 3339 time, e.g. 2026-06-01T00:00:00Z")
        }
    }

    func run() throws {
        let vocabulary = Vocabulary()
        let loaded = try LoadedPolicies.load(directory, vocabulary: vocabulary)
        guard let policySet = loaded.result.policySet else {
            print(loaded.result.diagnostics.text)
            printError("consentctl: the policy set does not compile; every request would be denied (INVALID_REQUEST)")
            throw ExitCode(1)
        }
        var records: [CompactRecord] = []
        if let consent {
            guard let data = FileManager.default.contents(atPath: consent) else {
                printError("consentctl: cannot read consent file \(consent)")
                throw ExitCode(66)
            }
            let parsed = PolicyParser.parseRecords(text: String(decoding: data, as: UTF8.self), file: consent)
            if parsed.diagnostics.hasErrors {
                print(parsed.diagnostics.text)
                throw ExitCode(1)
            }
            records = parsed.records.map(\.record).filter { ExactString($0.subject) == ExactString(subject) }.map { $0.compact(in: vocabulary) }
        }
        let request = DecisionRequest(
            subject: subject, purpose: purpose, dataCategory: data,
            context: RequestContext(jurisdiction: jurisdiction, gpc: gpc, uspOptOut: uspOptOut, channel: channel, at: at.flatMap { Timestamp(rfc3339: $0) })
        )
        let explanation = policySet.explain(request, consent: records[...], now: Timestamp.now())
        switch format {
        case .text: print(explanation.text)
        case .json: print(JSONOutput.encode(ExplanationJSON(explanation)))
        }
    }
}

struct ExplanationJSON: Encodable {
    struct Rule: Encodable {
        let id: String
        let location: String
        let effect: String
        let outcome: String
    }
    struct Record: Encodable {
        let record: String
        let covers: Bool
        let valid: Bool
        let effective: Bool
    }
    let decision: String
    let reason: String
    let rule: String?
    let ruleLocation: String?
    let consentRecord: String?
    let legalBasis: String?
    let obligations: [String]
    let policyRevision: String
    let at: String
    let rules: [Rule]
    let records: [Record]

    init(_ e: Explanation) {
        decision = e.report.effect.description
        reason = e.report.reason.description
        rule = e.report.ruleID
        ruleLocation = e.report.ruleLocation?.description
        consentRecord = e.report.record?.text
        legalBasis = e.report.legalBasis?.description
        obligations = e.report.obligations
        policyRevision = e.report.policyRevision
        at = e.at.rfc3339
        rules = e.rules.map { Rule(id: $0.rule.id, location: $0.rule.location.description, effect: $0.rule.effect.description, outcome: $0.outcome.description) }
        records = e.records.enumerated().map { Record(record: $1.record.text, covers: $1.covers, valid: $1.valid, effective: $0 == e.effectiveRecord) }
    }
}
