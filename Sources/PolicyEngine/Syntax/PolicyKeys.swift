import ConsentModel
import ConsentSignals

/// The keys of every mapping in a policy-directory file, each with its JSON Schema: the parser
/// reads each mapping's allowed keys from these tables (`PolicyKeys.rule.names`), and
/// `PolicySchema.json` is generated from the same tables, so the schema an editor validates
/// against and the parser that reads the file cannot disagree about which keys exist, which are
/// required, or which words an enumerated value may be (those come from the model's own enums).
enum PolicyKeys {
    /// One key of a mapping: its name, its schema (a JSON fragment) and whether it is required.
    struct Key {
        let name: String
        let schema: String
        var required = false
    }

    /// A mapping's keys.
    struct Table {
        let keys: [Key]
        var names: [String] { keys.map(\.name) }
        var required: [String] { keys.filter(\.required).map(\.name) }

        init(_ keys: [Key]) { self.keys = keys }

        static func + (table: Table, more: [Key]) -> Table { Table(table.keys + more) }
    }

    // MARK: words (from the model's enums, never restated)

    static let kinds = PolicyParser.kinds
    static let effects = [Effect.allow, Effect.deny].map(\.description)
    static let consentModes = ["opt_in", "opt_out"]
    /// The bases a permission may rest on instead of consent.
    static let ruleBases = LegalBasis.allCases.filter { $0 != .consent }.map(\.description)
    static let recordBases = LegalBasis.allCases.map(\.description)
    static let choices = Choice.allCases.map(\.description)
    static let reasons = ReasonCode.allCases.map(\.description)
    static let signals = RequestSignal.allCases.map(\.rawValue)

    // MARK: schema fragments

    static func string(_ description: String? = nil) -> String { fragment(##""type": "string""##, description) }
    static func boolean(_ description: String? = nil) -> String { fragment(##""type": "boolean""##, description) }
    static func integer(_ range: ClosedRange<Int>, _ description: String? = nil) -> String {
        fragment(##""type": "integer", "minimum": \##(range.lowerBound), "maximum": \##(range.upperBound)"##, description)
    }
    static func words(_ words: [String], _ description: String? = nil) -> String {
        fragment(##""enum": \##(PolicySchema.list(words))"##, description)
    }
    static func reference(_ name: String, _ description: String? = nil) -> String { fragment(##""$ref": "#/$defs/\##(name)""##, description) }
    static func array(of items: String, _ description: String? = nil) -> String { fragment(##""type": "array", "items": \##(items)"##, description) }
    static func fragment(_ body: String, _ description: String?) -> String {
        "{" + body + (description.map { ##", "description": "## + PolicySchema.quoted($0) } ?? "") + "}"
    }

    static func header(_ kind: String) -> [Key] {
        [Key(name: "apiVersion", schema: ##"{"const": "\##(PolicyParser.apiVersion)"}"##, required: true), Key(name: "kind", schema: ##"{"const": "\##(kind)"}"##, required: true)]
    }

    // MARK: the tables

    static let taxonomy = Table(header("Taxonomy") + [
        Key(name: "description", schema: string()),
        Key(name: "purposes", schema: ##"{"type": "object", "description": "Dotted purpose keys; a key's parent must be declared too.", "propertyNames": {"$ref": "#/$defs/key"}, "additionalProperties": {"$ref": "#/$defs/purposeNode"}}"##),
        Key(name: "data_categories", schema: ##"{"type": "object", "description": "Dotted data-category keys; a key's parent must be declared too.", "propertyNames": {"$ref": "#/$defs/key"}, "additionalProperties": {"$ref": "#/$defs/dataNode"}}"##),
        Key(name: "jurisdictions", schema: ##"{"type": "object", "description": "Named groups of ISO 3166 codes and CC-* patterns.", "additionalProperties": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z]{2}(-([A-Z0-9]{1,3}|\\*))?$"}}}"##),
        Key(name: "tcf_vendor_id", schema: integer(1...65535, "The TCF vendor id TC strings are checked for when a request names none.")),
    ])

    static let purposeNode = Table([
        Key(name: "description", schema: string()),
        Key(name: "sale_or_sharing", schema: boolean("GPC and US Privacy opt-outs of sale apply to this purpose (unless: {sale_opt_out: true}).")),
        Key(name: "tcf_purposes", schema: array(of: integer(1...11))),
        Key(name: "labels", schema: ##"{"type": "object", "additionalProperties": {"type": "string"}}"##),
    ])

    static let dataNode = Table([
        Key(name: "description", schema: string()),
        Key(name: "sensitive", schema: boolean()),
        Key(name: "tcf_special_feature", schema: integer(1...2)),
        Key(name: "gpp_sensitive_data", schema: sensitivePositions),
        Key(name: "labels", schema: ##"{"type": "object", "additionalProperties": {"type": "string"}}"##),
    ])

    /// `gpp_sensitive_data: {usnat: 8, usca: 3}`: the category's position (1-based) in each GPP US
    /// section's SensitiveDataProcessing list, from the one layout table.
    static let sensitivePositions: String = {
        let properties = USSectionLayout.sensitiveDataSections.map { layout in
            PolicySchema.quoted("\(layout.name)") + ": " + integer(1...layout.offset(of: .sensitiveDataProcessing)!.count)
        }
        return ##"{"type": "object", "description": "Position of this category in each GPP US section's SensitiveDataProcessing (1-based); sensitive_data_opt_out holds when that position is 1.", "additionalProperties": false, "properties": {"## + properties.joined(separator: ", ") + "}}"
    }()

    static let policy = Table(header("Policy") + [
        Key(name: "name", schema: string()),
        Key(name: "description", schema: string()),
        Key(name: "default", schema: words(effects, "At most one file in a set may state it; absent everywhere means deny.")),
        Key(name: "rules", schema: array(of: reference("rule"))),
    ])

    static let rule = Table([
        Key(name: "id", schema: string("Unique in the policy set."), required: true),
        Key(name: "description", schema: string()),
        Key(name: "effect", schema: words(effects, "allow: a permission; deny: a prohibition (wins over every permission)."), required: true),
        Key(name: "purposes", schema: reference("keyList", "Absent: every purpose.")),
        Key(name: "data", schema: reference("keyList", "Absent: every data category.")),
        Key(name: "jurisdictions", schema: ##"{"oneOf": [{"$ref": "#/$defs/jurisdiction"}, {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/jurisdiction"}}], "description": "Absent: every request, including one with no jurisdiction."}"##),
        Key(name: "channels", schema: ##"{"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]}"##),
        Key(name: "consent", schema: words(consentModes)),
        Key(name: "basis", schema: words(ruleBases)),
        Key(name: "max_age", schema: reference("duration")),
        Key(name: "min_notice_version", schema: integer(1...Int(UInt32.max - 1))),
        Key(name: "unless", schema: reference("unless")),
        Key(name: "obligations", schema: array(of: reference("obligation"))),
    ])

    static let unless = Table(
        [Key(name: "consent", schema: ##"{"const": "opt_in", "description": "Prohibitions only: lifted when the effective consent record is a grant."}"##),
         Key(name: "any_of", schema: array(of: words(signals), "At least one of these signals is present (the other keys must all hold as well)."))]
            + signals.map { signal in
                Key(name: signal, schema: boolean(signal == RequestSignal.saleOptOut.rawValue ? "GPC or a US Privacy opt-out, for a sale_or_sharing purpose." : nil))
            }
    )

    static let test = Table(header("PolicyTest") + [
        Key(name: "name", schema: string()),
        Key(name: "description", schema: string()),
        Key(name: "now", schema: reference("time"), required: true),
        Key(name: "consent", schema: array(of: reference("record"))),
        Key(name: "cases", schema: array(of: reference("case"))),
    ])

    static let record = Table([
        Key(name: "subject", schema: ##"{"type": "string", "minLength": 1}"##, required: true),
        Key(name: "purpose", schema: reference("key"), required: true),
        Key(name: "data", schema: reference("key")),
        Key(name: "choice", schema: words(choices), required: true),
        Key(name: "at", schema: reference("time"), required: true),
        Key(name: "expires", schema: reference("time")),
        Key(name: "basis", schema: words(recordBases)),
        Key(name: "source", schema: string()),
        Key(name: "notice_version", schema: integer(0...Int(UInt32.max - 1))),
        Key(name: "jurisdiction", schema: string()),
        Key(name: "evidence", schema: string()),
        Key(name: "sequence", schema: ##"{"type": "integer", "minimum": 1}"##),
    ])

    static let testCase = Table([
        Key(name: "name", schema: string()),
        Key(name: "request", schema: reference("request"), required: true),
        Key(name: "expect", schema: reference("expect"), required: true),
        Key(name: "consent_unavailable", schema: boolean("Decide as a daemon whose copy of the consent store is not known to be current (CONSENT_UNAVAILABLE where consent is needed).")),
    ])

    static let request = Table([
        Key(name: "subject", schema: string(), required: true),
        Key(name: "purpose", schema: string(), required: true),
        Key(name: "data", schema: string(), required: true),
        Key(name: "jurisdiction", schema: string()),
        Key(name: "gpc", schema: boolean()),
        Key(name: "usp_opt_out", schema: boolean()),
        Key(name: "channel", schema: string()),
        Key(name: "at", schema: reference("time")),
        Key(name: "tc_string", schema: string("A TCF v2 TC string; the TCF applies.")),
        Key(name: "gpp_string", schema: string()),
        Key(name: "gpp_sid", schema: array(of: integer(1...65535), "The applicable GPP sections; none: every section the GPP string carries.")),
        Key(name: "us_privacy", schema: string("A US Privacy string, e.g. 1YNN.")),
        Key(name: "tcf_vendor_id", schema: integer(1...65535)),
    ])

    static let expect = Table([
        Key(name: "decision", schema: words(effects), required: true),
        Key(name: "reason", schema: words(reasons)),
        Key(name: "rule", schema: string()),
        Key(name: "obligations", schema: array(of: ##"{"type": "string"}"##)),
    ])
}
