import ConsentModel

/// One parsed policy-directory file.
public enum PolicyDocument: Sendable {
    case taxonomy(TaxonomySyntax)
    case policy(PolicySyntax)
    case test(PolicyTestSyntax)
}

/// `kind: Taxonomy` — the purpose tree, the data-category tree and jurisdiction groups.
public struct TaxonomySyntax: Sendable {
    /// Purpose nodes in file order.
    public var purposes: [TaxonomyNodeSyntax] = []
    /// Data-category nodes in file order.
    public var dataCategories: [TaxonomyNodeSyntax] = []
    /// Jurisdiction groups in file order.
    public var jurisdictions: [JurisdictionGroupSyntax] = []
    /// `tcf_vendor_id: 755`: the vendor TC strings are checked for by default.
    public var tcfVendorId: Located<Int>?
    /// Where the document starts.
    public var location: SourceLocation
}

/// One taxonomy key with its description and attributes.
public struct TaxonomyNodeSyntax: Sendable {
    public var key: Located<String>
    public var description: String?
    /// `sensitive: true` (data categories).
    public var sensitive = false
    /// `sale_or_sharing: true` (purposes): GPC / US Privacy opt-outs of sale apply.
    public var saleOrSharing = false
    /// `tcf_purposes: [3, 4]` (purposes).
    public var tcfPurposes: [Int] = []
    /// `tcf_special_feature: 1` (data categories).
    public var tcfSpecialFeature: Int?
    /// `gpp_sensitive_data: {usnat: 8}` (data categories): GPP section id → 1-based position.
    public var gppSensitiveData: [Int: Int] = [:]
    /// `labels:` free-form string attributes for the organisation's own use.
    public var labels: [String: String] = [:]
}

/// A named group of ISO 3166 codes and `CC-*` patterns.
public struct JurisdictionGroupSyntax: Sendable {
    public var name: Located<String>
    public var members: [Located<String>]
}

/// `kind: Policy` — a named list of rules and, at most once per set, the default effect.
public struct PolicySyntax: Sendable {
    public var name: Located<String>?
    public var description: String?
    public var defaultEffect: Located<Effect>?
    public var rules: [RuleSyntax] = []
    public var location: SourceLocation
}

/// One rule as written.
public struct RuleSyntax: Sendable {
    public var id: Located<String>
    public var description: String?
    public var effect: Located<Effect>
    /// nil: every purpose.
    public var purposes: [Located<String>]?
    /// nil: every data category.
    public var data: [Located<String>]?
    /// nil: every request, including one with no jurisdiction.
    public var jurisdictions: [Located<String>]?
    /// nil: every channel.
    public var channels: [Located<String>]?
    /// `consent: opt_in | opt_out` (permissions).
    public var consent: Located<String>?
    /// `basis: contract | …` (permissions).
    public var basis: Located<String>?
    public var maxAge: Located<String>?
    public var minNoticeVersion: Located<Int>?
    public var unless: UnlessSyntax?
    public var obligations: [Located<String>] = []
    /// Where the rule's mapping starts (the `- ` of the list item).
    public var location: SourceLocation
}

/// `unless:` — conditions that lift a prohibition or defeat a permission (all must hold).
public struct UnlessSyntax: Sendable {
    /// `consent: opt_in` (prohibitions only).
    public var consent: Located<String>?
    /// Request signals and the value each must have, e.g. `gpc: true`.
    public var signals: [(name: Located<String>, value: Bool)] = []
    /// `any_of: [sale_opt_out, targeted_advertising_opt_out]`: at least one of these signals present.
    public var any: [Located<String>] = []
    public var location: SourceLocation
}

/// `kind: PolicyTest` — consent records, requests and expected decisions.
public struct PolicyTestSyntax: Sendable {
    public var name: Located<String>?
    public var now: Located<Timestamp>?
    public var consent: [TestRecordSyntax] = []
    public var cases: [TestCaseSyntax] = []
    public var location: SourceLocation
}

/// A consent record in a test suite or a `--consent` file.
public struct TestRecordSyntax: Sendable {
    public var record: ConsentRecord
    public var location: SourceLocation
}

/// One test case.
public struct TestCaseSyntax: Sendable {
    public var name: String
    public var request: TestRequestSyntax
    public var expectDecision: Effect
    public var expectReason: ReasonCode?
    public var expectRule: String?
    public var expectObligations: [String]?
    public var location: SourceLocation
    /// Decide as a daemon whose consent index is stale (`consent_unavailable: true`).
    public var consentUnavailable = false
}

/// A request as written in a test case or on the command line.
public struct TestRequestSyntax: Sendable {
    public var subject: String
    public var purpose: String
    public var data: String
    public var context: RequestContext
}
