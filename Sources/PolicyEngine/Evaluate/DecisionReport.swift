import ConsentModel

/// A consent record as a decision reports it.
public struct RecordSummary: Hashable, Sendable {
    public var sequence: UInt64
    public var purpose: String
    public var dataCategory: String?
    public var choice: Choice
    public var recordedAt: Timestamp
    public var expiresAt: Timestamp?
    public var source: String
    public var noticeVersion: UInt32?
    public var legalBasis: LegalBasis

    /// `#3 grant marketing [user.behavior] at 2026-01-10T00:00:00Z via web, notice 3`.
    public var text: String {
        var parts = "#\(sequence) \(choice) \(purpose)"
        if let dataCategory { parts += " [\(dataCategory)]" }
        parts += " at \(recordedAt)"
        if let expiresAt { parts += ", expires \(expiresAt)" }
        parts += " via \(source)"
        if let noticeVersion { parts += ", notice \(noticeVersion)" }
        return parts
    }
}

/// The full, printable form of a decision: every field the contract says a decision carries.
public struct DecisionReport: Hashable, Sendable {
    public var effect: Effect
    public var reason: ReasonCode
    /// The deciding rule's id, when a rule decided.
    public var ruleID: String?
    /// Where the deciding rule is written.
    public var ruleLocation: SourceLocation?
    /// The consent record relied on, if any.
    public var record: RecordSummary?
    /// The legal basis of an allow.
    public var legalBasis: LegalBasis?
    /// Obligations that come with an allow.
    public var obligations: [String]
    /// The policy revision the decision was made under.
    public var policyRevision: String
}

extension PolicySet {
    /// The printable summary of a compact record (cold path: looks names up in the vocabulary).
    public func summary(of record: CompactRecord) -> RecordSummary {
        RecordSummary(
            sequence: record.sequence,
            purpose: vocabulary.purposes.name(record.purpose) ?? "#\(record.purpose)",
            dataCategory: record.dataCategory == CompactRecord.allData ? nil : vocabulary.dataCategories.name(record.dataCategory) ?? "#\(record.dataCategory)",
            choice: record.choice, recordedAt: record.recordedAt,
            expiresAt: record.expiresAt == .distantFuture ? nil : record.expiresAt,
            source: record.source == CompactRecord.tcfSource ? CompactRecord.tcfSourceName : vocabulary.sources.name(record.source) ?? "#\(record.source)",
            noticeVersion: record.noticeVersion == CompactRecord.noNotice ? nil : record.noticeVersion,
            legalBasis: record.legalBasis
        )
    }

    /// The full report of a decision made under this set.
    public func report(_ decision: Decision) -> DecisionReport {
        let rule = decision.ruleIndex >= 0 ? rules[Int(decision.ruleIndex)] : nil
        return DecisionReport(
            effect: decision.effect, reason: decision.reason, ruleID: rule?.id, ruleLocation: rule?.location,
            record: decision.record.map(summary(of:)), legalBasis: decision.legalBasis,
            obligations: decision.isAllowed ? rule?.obligations ?? [] : [], policyRevision: revision
        )
    }
}
