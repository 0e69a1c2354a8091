import ConsentModel

/// A decision with its full trace: every rule of the set and what happened to it, every consent
/// record of the subject and whether it covered the request and counted, and the effective one.
public struct Explanation: Sendable {
    /// The request as asked.
    public var request: DecisionRequest
    /// The instant decided at.
    public var at: Timestamp
    /// The decision.
    public var decision: Decision
    /// Its printable form.
    public var report: DecisionReport
    /// Every rule in set order with its outcome (nil when resolving failed before any rule ran).
    public var rules: [(rule: RuleInfo, outcome: RuleOutcome)]
    /// Every record of the subject: covers the request? counts at the instant?
    public var records: [(record: RecordSummary, covers: Bool, valid: Bool)]
    /// Index into `records` of the effective record, if one was computed and found.
    public var effectiveRecord: Int?
    /// True when the subject's record trace was withheld (`withoutRecordTrace()`).
    public var recordsWithheld = false
    /// Which signal string of the request cannot be read and why (`SignalAssessment.problemMessage`).
    public var signalProblem: String?

    /// This explanation without the trace of the subject's consent records — for callers that may
    /// check but not read consent history. The decision itself (and the one record it relied
    /// on, which every decision names) stays.
    public func withoutRecordTrace() -> Explanation {
        var copy = self
        copy.records = []
        copy.effectiveRecord = nil
        copy.recordsWithheld = true
        return copy
    }

    /// A human-readable rendering.
    public var text: String {
        var lines: [String] = []
        let r = report
        lines.append("decision: \(r.effect) (\(r.reason))")
        if let id = r.ruleID, let location = r.ruleLocation { lines.append("rule: \(id) at \(location)") }
        if let record = r.record { lines.append("consent record: \(record.text)\(effectiveRecord == -1 ? " (from the TC string)" : "")") }
        if let basis = r.legalBasis { lines.append("legal basis: \(basis)") }
        if !r.obligations.isEmpty { lines.append("obligations: \(r.obligations.joined(separator: ", "))") }
        lines.append("policy revision: \(r.policyRevision)")
        var context = "request: subject=\(request.subject) purpose=\(request.purpose) data=\(request.dataCategory)"
        if let j = request.context.jurisdiction { context += " jurisdiction=\(j)" }
        if request.context.gpc { context += " gpc" }
        if request.context.uspOptOut { context += " usp_opt_out" }
        if let channel = request.context.channel { context += " channel=\(channel)" }
        if let tc = request.context.tcString { context += " tc_string=\(tc)" }
        if let gpp = request.context.gppString { context += " gpp_string=\(gpp)" }
        let sections = request.context.gppSectionIds
        if sections.count > RequestContext.maximumGPPSectionIds {
            context += " gpp_sid=(\(sections.count) ids, over the limit of \(RequestContext.maximumGPPSectionIds))"
        } else if !sections.isEmpty {
            context += " gpp_sid=\(sections.map(String.init).joined(separator: ","))"
        }
        if let usp = request.context.usPrivacy { context += " us_privacy=\(usp)" }
        if let vendor = request.context.tcfVendorId { context += " tcf_vendor_id=\(vendor)" }
        context += " at=\(at)"
        lines.append(context)
        if let signalProblem { lines.append("signals: \(signalProblem)") }
        if recordsWithheld {
            lines.append("consent records: withheld (reading a subject's consent history needs the admin role)")
        } else {
            lines.append("consent records (\(records.count)):")
            if records.isEmpty { lines.append("  (none)") }
        }
        for (index, entry) in records.enumerated() {
            let state = !entry.covers ? "does not cover the request" : entry.valid ? (index == effectiveRecord ? "EFFECTIVE" : "covers, superseded") : "covers, not valid at this instant"
            lines.append("  \(entry.record.text): \(state)")
        }
        lines.append("rules (\(rules.count)):")
        for (rule, outcome) in rules {
            lines.append("  \(rule.id) (\(rule.effect == .allow ? "permission" : "prohibition"), \(rule.location)): \(outcome)")
        }
        return lines.joined(separator: "\n")
    }
}

struct TraceRecorder: DecisionTracer {
    var outcomes: [Int32: RuleOutcome] = [:]
    var records: [Int: (covers: Bool, valid: Bool)] = [:]
    var effective: Int?

    mutating func rule(_ index: Int32, _ outcome: RuleOutcome) { outcomes[index] = outcome }
    mutating func record(_ index: Int, covers: Bool, valid: Bool) { records[index] = (covers, valid) }
    mutating func effective(_ index: Int?) { effective = index }
}

extension PolicySet {
    /// Decides like `decide` and records why, for `explain`. Slow path: allocates freely.
    public func explain(_ request: DecisionRequest, consent: ArraySlice<CompactRecord>, now: Timestamp, consentAvailable: Bool = true) -> Explanation {
        let at = request.context.at ?? now
        let summaries = consent.map(summary(of:))
        let problem = request.context.hasSignalStrings ? withSignals(request.context) { $0.problemMessage } : nil
        switch resolve(request, now: now) {
        case let .failure(failure):
            let decision = Decision.deny(failure.reason)
            var explanation = Explanation(request: request, at: at, decision: decision, report: report(decision), rules: [],
                                          records: summaries.map { ($0, false, false) }, effectiveRecord: nil)
            explanation.signalProblem = problem
            return explanation
        case var .success(resolved):
            resolved.consentUnavailable = !consentAvailable
            var tracer = TraceRecorder()
            let decision = evaluate(resolved, consent: consent, tracer: &tracer)
            if tracer.records.isEmpty && !consent.isEmpty {
                // No rule needed consent; still show which records would have counted.
                _ = effectiveConsent(resolved, consent, &tracer)
            }
            let rules = rules.indices.map { index in (self.rules[index], tracer.outcomes[Int32(index)] ?? .purposeNotCovered) }
            let records = summaries.indices.map { index in
                (summaries[index], tracer.records[index]?.covers ?? false, tracer.records[index]?.valid ?? false)
            }
            var explanation = Explanation(request: request, at: at, decision: decision, report: report(decision), rules: rules, records: records, effectiveRecord: tracer.effective)
            explanation.signalProblem = problem
            return explanation
        }
    }
}
