import ConsentModel

/// One failed test case: what was expected and what was decided.
public struct PolicyTestFailure: Sendable {
    /// The suite's file.
    public var file: String
    /// The case's name.
    public var name: String
    /// Where the case is written.
    public var location: SourceLocation
    /// What the case expected, e.g. `allow CONSENT_GRANTED by targeted-ads-eea`.
    public var expected: String
    /// What was decided, with the deciding rule.
    public var actual: DecisionReport

    /// A multi-line description for terminals and CI logs.
    public var text: String {
        var decided = "\(actual.effect) \(actual.reason)"
        if let id = actual.ruleID, let location = actual.ruleLocation { decided += " by \(id) (\(location))" }
        if !actual.obligations.isEmpty { decided += " with obligations [\(actual.obligations.joined(separator: ", "))]" }
        return "FAIL \(location): \(name)\n    expected: \(expected)\n    decided:  \(decided)"
    }
}

/// The outcome of running policy test suites.
public struct PolicyTestReport: Sendable {
    /// Cases that passed.
    public var passed = 0
    /// Cases that failed, plus suites that could not be read.
    public var failed = 0
    /// Every failed case.
    public var failures: [PolicyTestFailure] = []
    /// Problems in the suites themselves (and in the policy set, if it did not compile).
    public var diagnostics: [Diagnostic] = []
    /// Ids of the rules that decided at least one case.
    public var decidingRules: Set<String> = []

    /// The closing line: `N passed, M failed`.
    public var summary: String { "\(passed) passed, \(failed) failed" }
    /// True when everything passed and nothing was wrong with the suites.
    public var succeeded: Bool { failed == 0 && !diagnostics.hasErrors }
}

/// Runs `kind: PolicyTest` suites against a compiled policy set.
public enum PolicyTestRunner {
    /// Runs every suite in `suites` against `policySet`.
    public static func run(_ suites: [PolicySource], against policySet: PolicySet) -> PolicyTestReport {
        var report = PolicyTestReport()
        for source in suites.sorted(by: { $0.path < $1.path }) {
            let (document, diagnostics) = PolicyParser.parse(source.text, file: source.path)
            report.diagnostics += diagnostics
            guard case let .test(suite)? = document else {
                if document != nil {
                    report.diagnostics.append(Diagnostic(.error, "not-a-test", at: SourceLocation(file: source.path, line: 1, column: 1), "a *_test.yaml file must have `kind: PolicyTest`", hint: "rename the file if it is part of the policy set"))
                }
                report.failed += 1
                continue
            }
            if diagnostics.hasErrors { report.failed += 1; continue }
            run(suite, file: source.path, against: policySet, into: &report)
        }
        report.diagnostics = report.diagnostics.sortedForOutput()
        return report
    }

    static func run(_ suite: PolicyTestSyntax, file: String, against policySet: PolicySet, into report: inout PolicyTestReport) {
        var bySubject: [ExactString: [CompactRecord]] = [:]  // subjects are bytes
        for entry in suite.consent {
            let record = entry.record
            if !policySet.purposes.contains(record.purpose) {
                report.diagnostics.append(Diagnostic(.warning, "unknown-purpose", at: entry.location, "consent record for purpose '\(record.purpose)', which the taxonomy does not declare; it will never count", hint: Suggest.didYouMean(record.purpose, in: policySet.purposes.keys)))
            }
            if let data = record.dataCategory, !policySet.dataCategories.contains(data) {
                report.diagnostics.append(Diagnostic(.warning, "unknown-data-category", at: entry.location, "consent record for data category '\(data)', which the taxonomy does not declare; it will never count", hint: Suggest.didYouMean(data, in: policySet.dataCategories.keys)))
            }
            bySubject[ExactString(record.subject), default: []].append(record.compact(in: policySet.vocabulary))
        }
        let now = suite.now?.value ?? Timestamp(seconds: 0)
        for testCase in suite.cases {
            let request = DecisionRequest(subject: testCase.request.subject, purpose: testCase.request.purpose, dataCategory: testCase.request.data, context: testCase.request.context)
            let records = bySubject[ExactString(request.subject)] ?? []
            let decision = policySet.decide(request, consent: records[...], now: now, consentAvailable: !testCase.consentUnavailable)
            let actual = policySet.report(decision)
            if let id = actual.ruleID { report.decidingRules.insert(id) }
            var ok = actual.effect == testCase.expectDecision
            if let reason = testCase.expectReason, reason != actual.reason { ok = false }
            if let rule = testCase.expectRule, rule != actual.ruleID { ok = false }
            if let obligations = testCase.expectObligations, obligations != actual.obligations { ok = false }
            if ok {
                report.passed += 1
            } else {
                report.failed += 1
                var expected = "\(testCase.expectDecision)"
                if let reason = testCase.expectReason { expected += " \(reason)" }
                if let rule = testCase.expectRule { expected += " by \(rule)" }
                if let obligations = testCase.expectObligations { expected += " with obligations [\(obligations.joined(separator: ", "))]" }
                report.failures.append(PolicyTestFailure(file: file, name: testCase.name, location: testCase.location, expected: expected, actual: actual))
            }
        }
    }
}
