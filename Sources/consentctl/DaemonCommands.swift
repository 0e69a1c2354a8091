import ArgumentParser
import ConsentClient
import ConsentModel
import ConsentWire
import Foundation
import SwiftProtobuf

/// `--socket` for commands that talk to a running daemon.
struct SocketOptions: ParsableArguments {
    @Option(help: "The daemon's socket.")
    var socket = "consentd.sock"

    @Option(help: "Seconds to wait for the daemon's answer.")
    var timeout: Double = 5

    func connect() throws -> ConsentClient {
        do {
            return try ConsentClient(socketPath: socket, timeout: timeout)
        } catch {
            printError("consentctl: \(error)")
            throw ExitCode(69)
        }
    }
}

/// Runs a client call, turning client errors into a message and an exit code. `onTimeout`: what
/// to tell the user when no answer came in time (a write may still have been stored).
func daemonCall<T>(onTimeout hint: String? = nil, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ConsentClientError {
        printError("consentctl: \(error)")
        if case .timeout = error.kind, let hint { printError("(\(hint))") }
        if case .server(.permissionDenied) = error.kind { throw ExitCode(77) }
        if case .server = error.kind { throw ExitCode(1) }
        throw ExitCode(69)
    }
}

/// What to say when a write through the daemon got no answer in time: it may have been stored.
/// `retry`: the options that make running it again store it at most once (with its key).
func unansweredWriteHint(subject: String, socket: String, idempotencyKey: String?, retry: String) -> String {
    guard idempotencyKey != nil else {
        return "the write may still have been stored: look at `consentctl consent history \(subject) --socket \(socket)` before running it again, "
            + "and give writes an --idempotency-key so that a retry stores them at most once"
    }
    return "the write may still have been stored: to store it at most once, run it again with \(retry), or wait longer with --timeout"
}

extension Consentd_V1_Reason {
    /// The contract spelling (`CONSENT_GRANTED`).
    var name: String { model?.description ?? "UNSPECIFIED" }
}

extension Consentd_V1_LegalBasis {
    var name: String { model?.description ?? "unspecified" }
}

/// `consentctl check SUBJECT PURPOSE DATA`
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Ask the running daemon one question: may PURPOSE use DATA for SUBJECT?",
        discussion: """
        Prints the decision, its reason, the deciding rule, the consent record relied on, \
        obligations, the policy revision and the consent sequence. --format json prints the \
        proto3 JSON mapping of consentd.v1.CheckResponse. Exit status 0 whatever the decision \
        (3 for a deny with --fail-on-deny), 69 when the daemon cannot be reached.

        Consent signals go with the question as the ad request carried them: --tc-string (a \
        TCF v2 TC string; the TCF then applies), --gpp with --gpp-sid (the applicable GPP \
        sections, as OpenRTB's regs.gpp_sid), --us-privacy, --gpc, and --vendor (the TCF \
        vendor id asking; default: the policy set's tcf_vendor_id). A string the daemon cannot \
        read denies what it could have decided with INVALID_SIGNAL and says why; \
        `consentctl signals decode` shows what a string says.
        """
    )

    @Argument(help: "The data subject's id.") var subject: String
    @Argument(help: "The purpose key.") var purpose: String
    @Argument(help: "The data category key.") var data: String
    @Option(help: "ISO 3166 code of where the use happens.") var jurisdiction: String?
    @Flag(help: "A Global Privacy Control signal accompanies the request.") var gpc = false
    @Flag(help: "A US Privacy opt-out of sale accompanies the request.") var uspOptOut = false
    @Option(help: "The channel of the use.") var channel: String?
    @Option(help: "Decide at this RFC 3339 instant instead of now.") var at: String?
    @Option(name: .customLong("tc-string"), help: "A TCF v2 TC string from the consent banner (the TCF applies).") var tcString: String?
    @Option(name: .customLong("gpp"), help: "A GPP string.") var gpp: String?
    @Option(name: .customLong("gpp-sid"), help: ArgumentHelp("The GPP sections that apply, comma-separated (e.g. 7,8); none: every section the string carries.", valueName: "ids"))
    var gppSid: String?
    @Option(name: .customLong("us-privacy"), help: "A US Privacy string (e.g. 1YNN).") var usPrivacy: String?
    @Option(help: ArgumentHelp("The TCF vendor id asking (default: the policy set's tcf_vendor_id).", valueName: "id")) var vendor: UInt32?
    @Option(name: .customLong("min-sequence"), help: ArgumentHelp("The store sequence of a write this decision must see (read-your-writes across daemons; `consent grant` prints it as #N).", valueName: "n"))
    var minSequence: UInt64?
    @Flag(help: "Include the full trace.") var explain = false
    @Flag(help: "Exit with status 3 when the decision is deny.") var failOnDeny = false
    @Option(help: "Output format: text or json.") var format: OutputFormat = .text
    @OptionGroup var socketOptions: SocketOptions

    func validate() throws {
        if let at, Timestamp(rfc3339: at) == nil { throw ValidationError("--at '\(at)' is not an RFC 3339 time") }
        _ = try sectionIds()
        if let vendor, vendor < 1 || vendor > RequestContext.maximumTCFVendorId {
            throw ValidationError("--vendor must be a TCF vendor id (1 to \(RequestContext.maximumTCFVendorId))")
        }
    }

    /// `--gpp-sid` as ids.
    func sectionIds() throws -> [UInt32] {
        guard let gppSid, !gppSid.isEmpty else { return [] }
        return try gppSid.split(separator: ",", omittingEmptySubsequences: false).map { part in
            guard let id = UInt32(part.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--gpp-sid '\(gppSid)' must be section ids separated by commas (e.g. 7,8)")
            }
            return id
        }
    }

    func run() throws {
        let client = try socketOptions.connect()
        var context = RequestContext(jurisdiction: jurisdiction, gpc: gpc, uspOptOut: uspOptOut, channel: channel, at: at.flatMap { Timestamp(rfc3339: $0) })
        context.setSignals(tcString: tcString ?? "", gppString: gpp ?? "", gppSectionIds: try sectionIds(), usPrivacy: usPrivacy ?? "", tcfVendorId: vendor ?? 0)
        context.minSequence = minSequence ?? 0
        let response = try daemonCall { try client.check(subject: subject, purpose: purpose, dataCategory: data, context: context, explain: explain) }
        switch format {
        case .json:
            var options = JSONEncodingOptions()
            options.preserveProtoFieldNames = false
            print(try response.jsonString(options: options))
        case .text:
            var line = "\(response.decision == .allow ? "allow" : "deny") \(response.reason.name)"
            if !response.ruleID.isEmpty { line += " by \(response.ruleID) (\(response.ruleLocation))" }
            print(line)
            if !response.message.isEmpty { print("  \(response.message)") }
            if response.hasConsentRecord {
                let record = response.consentRecord
                // Sequence 0: the choice the request's TC string made, not a stored record.
                let origin = record.sequence == 0 ? "consent from the TC string" : "consent record #\(record.sequence)"
                var text = "  \(origin): \(record.choice == .grant ? "grant" : "deny") \(record.purpose)"
                if !record.dataCategory.isEmpty { text += " [\(record.dataCategory)]" }
                text += " at \(record.recordedAt.model) via \(record.source)"
                if record.hasNoticeVersion { text += ", notice \(record.noticeVersion)" }
                print(text)
            }
            if response.decision == .allow { print("  legal basis: \(response.legalBasis.name)") }
            if !response.obligations.isEmpty { print("  obligations: \(response.obligations.joined(separator: ", "))") }
            print("  policy revision \(response.policyRevision), consent sequence \(response.consentSequence)")
            if response.hasExplanation { print(response.explanation.text) }
        }
        if failOnDeny && response.decision != .allow { throw ExitCode(3) }
    }
}

/// `consentctl status`
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the running daemon's policy revision, load errors, store sequence and counters."
    )

    @Option(help: "Output format: text or json.") var format: OutputFormat = .text
    @OptionGroup var socketOptions: SocketOptions

    func run() throws {
        let client = try socketOptions.connect()
        let status = try daemonCall { try client.status() }
        if format == .json {
            print(try status.jsonString())
            return
        }
        let counters = status.counters
        print("consentd \(status.version), up since \(status.startedAt.model)")
        print("policies: revision \(status.policyRevision), \(status.rules) rules from \(status.policyDirectory), loaded \(status.policyLoadedAt.model) in \(String(format: "%.1f", status.lastReloadMilliseconds)) ms")
        if status.policyErrors.isEmpty {
            print("  last reload: ok")
        } else {
            print("  last reload FAILED (the revision above keeps serving):")
            for error in status.policyErrors {
                print("    \(error.file):\(error.line):\(error.column): \(error.severity): \(error.message) [\(error.code)]")
            }
        }
        print("consent store: \(status.storePath), sequence \(status.consentSequence), \(status.subjects) subjects, \(status.records) records")
        if status.consentStale {
            print("  STALE: last confirmed current \(String(format: "%.1f", status.consentStalenessSeconds)) s ago; decisions that need consent are denied CONSENT_UNAVAILABLE")
        }
        print("requests \(counters.requests), decisions \(counters.decisions) (\(counters.allowed) allowed, \(counters.denied) denied), errors \(counters.errors)")
        print("in flight: \(counters.inFlight) (consent writes and history on the blocking pool)")
        print("connections: \(counters.connectionsOpen) open, \(counters.connectionsAccepted) accepted, \(counters.connectionsRefused) refused (limit), \(counters.connectionsIdleClosed) closed idle; frames rejected \(counters.framesRejected); permission denied \(counters.permissionDenied)")
        print("reloads: \(counters.reloadsOk) ok, \(counters.reloadsFailed) failed")
        if status.receiptsDirectory.isEmpty {
            print("receipts: off")
        } else {
            var line = "receipts: \(counters.receiptsWritten) written to \(status.receiptsDirectory), \(status.receiptsQueued) queued, \(counters.receiptsDropped) dropped"
            if counters.receiptsDropped > 0 { line += " (LOST: each loss is marked in the receipts files by a gap line, written with the next receipts that reach the disk)" }
            print(line)
            if !status.receiptsError.isEmpty { print("  last receipts error: \(status.receiptsError)") }
        }
        print("metrics: \(status.metricsAddress.isEmpty ? "off" : "http://\(status.metricsAddress)/metrics")")
        print("you (this connection): \(status.callerRoles.isEmpty ? "no role" : status.callerRoles.joined(separator: " + "))")
    }
}
