import ConsentModel
import ConsentStore
import Foundation
import PolicyEngine

/// One receipt line as written by the daemon.
public struct Receipt: Decodable, Sendable {
    public struct Context: Decodable, Sendable {
        public var jurisdiction: String?
        public var gpc: Bool?
        public var usp_opt_out: Bool?
        public var channel: String?
        public var at: String?
        /// The id of the request's signals line (`{"signals":{"id":…}}`), when it had signals.
        public var signals: String?
    }

    public var id: String
    public var time: String
    public var subject: String?
    public var subject_hash: String?
    public var purpose: String
    public var data_category: String
    public var context: Context
    public var decision: String
    public var reason: String
    public var rule: String?
    public var record: UInt64
    public var revision: String
    public var sequence: UInt64
    public var kind: String?
}

/// What a replay found.
public struct ReceiptReplayReport: Sendable {
    /// A receipt whose replayed decision differs, or a line or revision that cannot be checked
    /// and should be checkable.
    public struct Finding: Sendable, CustomStringConvertible {
        /// `file:line`.
        public var location: String
        public var id: String
        public var message: String
        public var description: String { "\(location): \(id.isEmpty ? "" : id + ": ")\(message)" }
    }

    /// Receipt lines read.
    public var receipts = 0
    /// Receipts re-decided with the same outcome.
    public var matched = 0
    /// Receipts whose replay differs (decision, reason, rule or relied-on record), unreadable
    /// lines, and receipts naming a revision whose sources are missing or altered.
    public var mismatches: [Finding] = []
    /// Receipts that cannot be re-decided by design: the subject was erased after the decision,
    /// or the receipts omit or hash a subject the store no longer has.
    public var unverifiable: [Finding] = []
    /// Lines no seal of the hash chain covers (a failed write's remains, a tail the daemon
    /// never sealed, or lines appended later): gaps, which fail only a strict replay.
    /// (Deleted, altered, reordered lines and removed blocks or files are `mismatches`.)
    public var unsealed: [Finding] = []
    /// Blocks whose seal was checked.
    public var sealedBlocks = 0
    /// Receipts the daemon reported as lost (gap markers), by reason.
    public var dropped: [String: UInt64] = [:]
    /// Revisions used.
    public var revisions: Set<String> = []
    /// Files read.
    public var files: [String] = []
    /// Files retired under the retention policy before this replay (recorded in the store, and
    /// linking the hash chain from its start to the first file still here): their receipts can
    /// no longer be re-decided, and that is no finding.
    public var retired: [ReceiptRetirement] = []
    /// Receipts in the retired files.
    public var retiredReceipts: Int { retired.reduce(0) { $0 + $1.receipts } }

    /// No mismatch (the proof holds for every receipt that was written).
    public var isClean: Bool { mismatches.isEmpty }
    /// Total receipts the daemon reported lost.
    public var droppedTotal: UInt64 { dropped.values.reduce(0, +) }
}

/// Re-decides receipts: each with the policy set of its revision (compiled from the sources kept
/// in the receipts directory) and the subject's consent records up to the receipt's store
/// sequence, at the receipt's instant.
public final class ReceiptReplayer {
    let directory: String
    let store: any ConsentStorage
    let fallbackPolicies: String?
    private var sets: [String: Result<PolicySet, ReplayProblem>] = [:]
    // Keyed by the subject's bytes: two subjects are one only if byte-equal.
    private var histories: [ExactString: [ConsentRecord]] = [:]
    private var erasures: [ExactString: [ErasureTombstone]] = [:]
    private var subjectsByHash: [String: String]?
    /// The signals lines read so far, by id (kept for the last `signalLineWindow` lines: a
    /// request's receipts follow its signals line within the request's own block of lines).
    private var signalLines: [String: ReceiptSchema.SignalsLine.Signals] = [:]
    private var signalLineOrder: [String] = []
    static let signalLineWindow = 4096

    struct ReplayProblem: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// - Parameters:
    ///   - directory: the receipts directory.
    ///   - store: the consent store the daemon served.
    ///   - fallbackPolicies: a policy directory to use for a revision whose sources are not in the
    ///     receipts directory (used only when it compiles to that very revision).
    public init(directory: String, store: any ConsentStorage, fallbackPolicies: String? = nil) {
        self.directory = directory
        self.store = store
        self.fallbackPolicies = fallbackPolicies
    }

    /// Replays every receipts file in order; `progress` sees each finding as it is made.
    public func run(progress: (ReceiptReplayReport.Finding, Bool) -> Void = { _, _ in }) throws -> ReceiptReplayReport {
        var report = ReceiptReplayReport()
        let files = ReceiptFiles.list(directory)
        let recorded = ((try? store.receiptLog(.retirements)) ?? []).compactMap(ReceiptRetirement.parse)
        // A directory whose files were all retired has nothing to replay, but its retirements
        // are still checked and reported.
        guard !files.isEmpty || !recorded.isEmpty else {
            throw ReplayProblem(message: "no receipts files (receipts-NNNNNN.jsonl or .jsonl.gz) in \(directory), and the store records none retired")
        }
        let decoder = JSONDecoder()
        var chain = ReceiptChainVerifier()
        var contents: [String: [UInt8]] = [:]
        func read(_ file: ReceiptFiles.File) throws -> [UInt8] {
            if let bytes = contents.removeValue(forKey: file.path) { return bytes }
            return try ReceiptFiles.read(file)
        }
        let resume = try checkRetirements(files: files, recorded: recorded, report: &report, progress: progress) { file in
            if let bytes = contents[file.path] { return bytes }
            let bytes = try read(file)
            contents[file.path] = bytes
            return bytes
        }
        for file in files {
            if let resume, resume.file == file.index { chain.continueAfterRetired(resume.head) }
            report.files.append(file.path)
            let name = file.name
            var lineNumber = 0
            let bytes: [UInt8]
            do { bytes = try read(file) } catch {
                // One unreadable file does not stop the replay: it is a finding, and the chain
                // check goes on from the next file's first block (the break is this finding).
                let finding = ReceiptReplayReport.Finding(location: name, id: "", message: "hash chain: this file cannot be read, so none of its receipts can be checked — \(error)")
                report.mismatches.append(finding)
                progress(finding, true)
                chain.skipUnreadableFile()
                continue
            }
            for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                lineNumber += 1
                guard !line.isEmpty else { continue }
                chain.line(line, file: name, number: lineNumber)
                if ReceiptChain.parse(line) != nil { continue }
                let location = "\(name):\(lineNumber)"
                let lineData = Data(line)
                if let gap = ReceiptSchema.GapLine.parse(line) {
                    report.dropped[gap.gap.reason, default: 0] += gap.gap.dropped
                    continue
                }
                do {
                    if let signalsLine = try ReceiptSchema.SignalsLine.parse(line) {
                        remember(signalsLine.signals)
                        continue
                    }
                } catch {
                    let finding = ReceiptReplayReport.Finding(location: location, id: "", message: "not a readable signals line: \(Self.describe(error))")
                    report.mismatches.append(finding)
                    progress(finding, true)
                    continue
                }
                report.receipts += 1
                let receipt: Receipt
                do { receipt = try decoder.decode(Receipt.self, from: lineData) } catch {
                    let finding = ReceiptReplayReport.Finding(location: location, id: "", message: "not a readable receipt: \(Self.describe(error))")
                    report.mismatches.append(finding)
                    progress(finding, true)
                    continue
                }
                switch replay(receipt) {
                case .matched(let revision):
                    report.matched += 1
                    report.revisions.insert(revision)
                case .mismatch(let message):
                    let finding = ReceiptReplayReport.Finding(location: location, id: receipt.id, message: message)
                    report.mismatches.append(finding)
                    progress(finding, true)
                case .unverifiable(let message):
                    let finding = ReceiptReplayReport.Finding(location: location, id: receipt.id, message: message)
                    report.unverifiable.append(finding)
                    progress(finding, false)
                }
            }
            chain.endOfFile(isLast: file.path == files.last?.path)
        }
        report.sealedBlocks = chain.sealedBlocks
        // The head the daemon anchored in the store must be in the files: otherwise sealed
        // blocks were removed from their end (which the chain alone cannot show).
        // (Unless the file it is in was retired since: its seals went with it.)
        if let text = try? store.receiptAnchor(), case let anchored = ReceiptAnchor.Head(text), !chain.sealHashes.contains(anchored.hash),
           !anchored.isRetired(Set(recorded.map(\.index))) {
            let finding = ReceiptReplayReport.Finding(location: "store", id: "", message: "hash chain: the store anchored seal \(anchored.hash.prefix(16))…, which is not in the receipts: sealed receipts were removed from the end of the files")
            report.mismatches.append(finding)
            progress(finding, true)
        }
        for text in (try? store.receiptChainBreaks()) ?? [] {
            let finding = ReceiptReplayReport.Finding(location: "store", id: "", message: "hash chain: a daemon found at start-up that receipts were missing — \(text)")
            report.mismatches.append(finding)
            progress(finding, true)
        }
        for problem in chain.problems {
            let finding = ReceiptReplayReport.Finding(location: problem.location, id: "", message: "hash chain: " + problem.message)
            if problem.isGap {
                report.unsealed.append(finding)
            } else {
                report.mismatches.append(finding)
            }
            progress(finding, !problem.isGap)
        }
        return report
    }

    /// Files retired under the retention policy: the store's record of each is the proof (the
    /// directory's ledger is a copy; an entry only there is a claim anyone who can delete files
    /// could write). When the chain of the first file still here starts after the genesis, the
    /// store's retirements must link it back to the genesis; the chain check then continues from
    /// there, and the retired files are reported as retired, not as removed.
    private func checkRetirements(files: [ReceiptFiles.File], recorded: [ReceiptRetirement], report: inout ReceiptReplayReport,
                                  progress: (ReceiptReplayReport.Finding, Bool) -> Void, read: (ReceiptFiles.File) throws -> [UInt8]) throws -> (file: Int, head: [UInt8])? {
        let ledger = ReceiptRetirement.ledger(directory)
        let confirmed = Set(recorded.map(\.lastSeal))
        for entry in ledger where !confirmed.contains(entry.lastSeal) {
            let finding = ReceiptReplayReport.Finding(location: ReceiptFiles.ledgerName, id: "", message: "hash chain: \(entry.file) is listed as retired, but the store has no record of its retirement: it was removed, and the retirement claimed afterwards")
            report.mismatches.append(finding)
            progress(finding, true)
        }
        // A file retired unreadable: its receipts were never proved, whether or not the chain
        // can be followed across it.
        for entry in recorded {
            guard let damage = entry.damage else { continue }
            let finding = ReceiptReplayReport.Finding(location: entry.file, id: "", message: "hash chain: retired at \(entry.retiredAt) (\(entry.reason)) while it could not be read, so its receipts cannot be checked — \(damage)")
            report.mismatches.append(finding)
            progress(finding, true)
        }
        guard !recorded.isEmpty else { return nil }
        guard let first = files.first else {
            // Every file retired: the chain runs from the genesis to the newest retirement.
            let newest = recorded.max { $0.index < $1.index }!
            let end = recorded.filter { $0.damage == nil }.max { $0.index < $1.index }?.lastSeal ?? ""
            if let retired = ReceiptRetirement.chain(endingAt: end, in: recorded, firstPresent: newest.index + 1) {
                report.retired = retired
            } else {
                let finding = ReceiptReplayReport.Finding(location: "store", id: "", message: "hash chain: the retirements the store recorded do not link back to the beginning: files were removed before them")
                report.mismatches.append(finding)
                progress(finding, true)
            }
            return nil
        }
        // Files still here that the store records as retired (a file the daemon could not
        // delete, retired around): replayed as they are, and the chain taken up again at the
        // first file not retired.
        let retiredHere = Set(recorded.filter { $0.damage == nil }.map(\.lastSeal))
        var live = first
        for file in files {
            live = file
            guard let bytes = try? read(file),
                  let last = bytes.split(separator: 0x0A).last(where: { ReceiptChain.parse($0) != nil }).flatMap({ ReceiptChain.parse($0) }),
                  retiredHere.contains(last.hash) else { break }
        }
        guard let bytes = try? read(live) else { return nil }
        guard let prev = bytes.split(separator: 0x0A).lazy.compactMap({ ReceiptChain.parse($0) }).first?.prev,
              prev != ReceiptChain.hex(ReceiptChain.genesis),
              let retired = ReceiptRetirement.chain(endingAt: prev, in: recorded, firstPresent: live.index),
              let start = ReceiptChain.unhex(prev) else { return nil }
        report.retired = retired
        return (live.index, start)
    }

    enum Outcome {
        case matched(String)
        case mismatch(String)
        case unverifiable(String)
    }

    func replay(_ receipt: Receipt) -> Outcome {
        var signals: ReceiptSchema.SignalsLine.Signals?
        if let id = receipt.context.signals {
            guard let found = signalLines[id] else {
                return .mismatch("its signals line \(id) is not in the receipts (it comes before the request's first receipt)")
            }
            if found.hasHashedStrings {
                return .unverifiable("the receipt holds the SHA-256 of its signal strings, not the strings (receipts written with --receipt-subject raw keep them)")
            }
            signals = found
        }
        let set: PolicySet
        switch policySet(receipt.revision) {
        case .success(let found): set = found
        case .failure(let problem): return .mismatch(problem.message)
        }
        guard let time = Timestamp(rfc3339: receipt.time) else { return .mismatch("time '\(receipt.time)' is not RFC 3339") }
        var at: Timestamp?
        if let text = receipt.context.at {
            guard let parsed = Timestamp(rfc3339: text) else { return .mismatch("context.at '\(text)' is not RFC 3339") }
            at = parsed
        }
        let subject: String
        if let raw = receipt.subject {
            subject = raw
        } else if let hash = receipt.subject_hash {
            if let found = self.subject(hashed: hash) {
                subject = found
            } else {
                if let erasure = (try? store.erasures(hashed: hash))?.first(where: { $0.sequence > receipt.sequence }) {
                    return .unverifiable("the subject was erased after the decision (erasure at sequence \(erasure.sequence))")
                }
                // No record of the subject was ever stored (records are only removed by an
                // erasure, which leaves a tombstone): it is decided with none. Its id is unknown,
                // but only its validity matters then, and an INVALID_REQUEST receipt says that.
                let placeholder = receipt.reason == ReasonCode.invalidRequest.description ? "" : "x"
                return compare(receipt, signals: signals, set: set, time: time, at: at, subject: placeholder, records: [])
            }
        } else {
            return .unverifiable("the receipt omits the subject")
        }
        let records: [ConsentRecord]
        let tombstones: [ErasureTombstone]
        do {
            records = try history(subject)
            tombstones = try erasures(subject)
        } catch {
            return .mismatch("cannot read the store: \(error)")
        }
        if let erasure = tombstones.first(where: { $0.sequence > receipt.sequence }) {
            return .unverifiable("the subject was erased after the decision (erasure at sequence \(erasure.sequence))")
        }
        let visible = records.filter { $0.sequence <= receipt.sequence }.sorted { $0.sequence < $1.sequence }
        return compare(receipt, signals: signals, set: set, time: time, at: at, subject: subject, records: visible)
    }

    /// Decides the receipt's question again with `records` and compares every field.
    private func compare(
        _ receipt: Receipt, signals: ReceiptSchema.SignalsLine.Signals?, set: PolicySet, time: Timestamp, at: Timestamp?, subject: String, records: [ConsentRecord]
    ) -> Outcome {
        let compact = records.map { $0.compact(in: set.vocabulary) }
        var context = RequestContext(
            jurisdiction: receipt.context.jurisdiction, gpc: receipt.context.gpc ?? false, uspOptOut: receipt.context.usp_opt_out ?? false,
            channel: receipt.context.channel, at: at
        )
        if let signals {
            let ids = signals.gpp_sid ?? []
            let sections = EventSignals(gppSectionMask: SignalAssessment.sectionMask(ids), gppSectionCount: max(ids.count, signals.gpp_sid_count ?? 0))
            context.setSignals(
                tcString: signals.tc_string ?? "", gppString: signals.gpp_string ?? "", gppSectionIds: sections.replayedSectionIds,
                usPrivacy: signals.us_privacy ?? "", tcfVendorId: signals.tcf_vendor_id ?? 0
            )
        }
        let request = DecisionRequest(subject: subject, purpose: receipt.purpose, dataCategory: receipt.data_category, context: context)
        // A receipt of a decision made while the daemon's index was stale is re-decided as such:
        // the replay shows that, without consent, the policies gave exactly that answer.
        let decision = set.decide(request, consent: compact[...], now: time, consentAvailable: receipt.reason != ReasonCode.consentUnavailable.description)
        let replayedDecision = ReceiptSchema.decisionWord(allowed: decision.isAllowed)
        let replayedRule = decision.ruleIndex >= 0 ? set.rules[Int(decision.ruleIndex)].id : nil
        let replayedRecord = decision.record?.sequence ?? 0
        var differences: [String] = []
        if replayedDecision != receipt.decision { differences.append("decision \(receipt.decision), replay \(replayedDecision)") }
        if decision.reason.description != receipt.reason { differences.append("reason \(receipt.reason), replay \(decision.reason)") }
        if replayedRule != receipt.rule { differences.append("rule \(receipt.rule ?? "none"), replay \(replayedRule ?? "none")") }
        if replayedRecord != receipt.record { differences.append("record \(receipt.record), replay \(replayedRecord)") }
        if differences.isEmpty { return .matched(receipt.revision) }
        return .mismatch(differences.joined(separator: "; ") + " (revision \(receipt.revision), store sequence \(receipt.sequence))")
    }

    private func remember(_ signals: ReceiptSchema.SignalsLine.Signals) {
        if signalLines.updateValue(signals, forKey: signals.id) == nil { signalLineOrder.append(signals.id) }
        if signalLineOrder.count > 2 * Self.signalLineWindow {
            for id in signalLineOrder.prefix(Self.signalLineWindow) { signalLines[id] = nil }
            signalLineOrder.removeFirst(Self.signalLineWindow)
        }
    }

    private func policySet(_ revision: String) -> Result<PolicySet, ReplayProblem> {
        if let cached = sets[revision] { return cached }
        let result = compile(revision)
        sets[revision] = result
        return result
    }

    private func compile(_ revision: String) -> Result<PolicySet, ReplayProblem> {
        var candidates: [(String, String)] = []
        if let archived = PolicyArchive.directory(of: revision, receipts: directory) { candidates.append((archived, "archived")) }
        if let fallbackPolicies { candidates.append((fallbackPolicies, "--policies")) }
        guard !candidates.isEmpty else {
            return .failure(ReplayProblem(message: "the sources of policy revision \(revision) are not in \(directory)/policies (give --policies with that revision)"))
        }
        var problems: [String] = []
        for (path, origin) in candidates {
            do {
                guard let set = try PolicyDirectory.compile(path, vocabulary: Vocabulary()).result.policySet else {
                    problems.append("\(origin) \(path) does not compile")
                    continue
                }
                guard set.revision == revision else {
                    problems.append("\(origin) \(path) is revision \(set.revision), not \(revision)\(origin == "archived" ? " (the archived sources were altered)" : "")")
                    continue
                }
                return .success(set)
            } catch {
                problems.append("\(origin) \(path): \(error)")
            }
        }
        return .failure(ReplayProblem(message: "policy revision \(revision) cannot be rebuilt: " + problems.joined(separator: "; ")))
    }

    private func history(_ subject: String) throws -> [ConsentRecord] {
        if let cached = histories[ExactString(subject)] { return cached }
        let records = DecisionRequest.isValidSubject(subject) ? try store.history(of: subject) : []
        histories[ExactString(subject)] = records
        return records
    }

    private func erasures(_ subject: String) throws -> [ErasureTombstone] {
        if let cached = erasures[ExactString(subject)] { return cached }
        let found = DecisionRequest.isValidSubject(subject) ? try store.erasures(of: subject) : []
        erasures[ExactString(subject)] = found
        return found
    }

    private func subject(hashed hash: String) -> String? {
        if subjectsByHash == nil {
            var map: [String: String] = [:]
            var seen = Set<ExactString>()
            try? store.forEachRecord { record in
                if seen.insert(ExactString(record.subject)).inserted { map[store.subjectHash(record.subject)] = record.subject }
            }
            subjectsByHash = map
        }
        return subjectsByHash?[hash]
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing field '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
        case DecodingError.dataCorrupted: "not JSON"
        default: "\(error)"
        }
    }
}
