/// The JSON Schema (draft 2020-12) of policy-directory files, for editors and CI validators,
/// generated from the parser's own key tables (`PolicyKeys`). `consentctl policy schema` prints
/// it; `schema/consentd-v1.schema.json` is the same text (CI checks it).
public enum PolicySchema {
    /// The schema text.
    public static let json: String = {
        let defs: [(String, String)] = [
            ("key", ##"{"type": "string", "pattern": "^[a-z0-9_-]+(\\.[a-z0-9_-]+)*$", "description": "A dotted taxonomy key; it covers itself and every descendant."}"##),
            ("keyList", ##"{"oneOf": [{"$ref": "#/$defs/key"}, {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/key"}}]}"##),
            ("jurisdiction", ##"{"type": "string", "description": "A jurisdiction group name, an ISO 3166-1 alpha-2 code (DE), an ISO 3166-2 code (US-CA) or a pattern (US-*)."}"##),
            ("duration", ##"{"type": "string", "pattern": "^[1-9][0-9]*[smhd]$", "description": "A whole number of seconds (s), minutes (m), hours (h) or days (d), e.g. 395d."}"##),
            ("time", ##"{"type": "string", "description": "An RFC 3339 instant, e.g. 2026-06-01T00:00:00Z, or a date (midnight UTC)."}"##),
            ("purposeNode", object(PolicyKeys.purposeNode, nullable: true)),
            ("dataNode", object(PolicyKeys.dataNode, nullable: true)),
            ("Taxonomy", object(PolicyKeys.taxonomy)),
            ("unless", object(PolicyKeys.unless, extra: [
                ("minProperties", "1"),
                ("description", quoted("All stated conditions must hold: they lift a prohibition, or defeat a permission (OPTED_OUT_BY_SIGNAL).")),
            ])),
            ("obligation", ##"{"oneOf": [{"type": "string"}, {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": {"type": "string"}, "properties": {"retention": {"$ref": "#/$defs/duration"}}}]}"##),
            ("rule", object(PolicyKeys.rule, extra: [
                // A permission states exactly one of consent and basis; a prohibition neither,
                // and no max_age or min_notice_version; only a prohibition's unless names consent.
                ("if", ##"{"properties": {"effect": {"const": "allow"}}}"##),
                ("then", ##"{"oneOf": [{"required": ["consent"], "not": {"required": ["basis"]}}, {"required": ["basis"], "not": {"required": ["consent"]}}], "properties": {"unless": {"not": {"required": ["consent"]}}}}"##),
                ("else", ##"{"not": {"anyOf": [{"required": ["consent"]}, {"required": ["basis"]}, {"required": ["max_age"]}, {"required": ["min_notice_version"]}]}}"##),
            ])),
            ("Policy", object(PolicyKeys.policy)),
            ("record", object(PolicyKeys.record)),
            ("request", object(PolicyKeys.request)),
            ("expect", object(PolicyKeys.expect)),
            ("case", object(PolicyKeys.testCase)),
            ("PolicyTest", object(PolicyKeys.test)),
        ]
        var lines = [
            "{",
            ##"  "$schema": "https://json-schema.org/draft/2020-12/schema","##,
            ##"  "$id": "https://consentd.dev/schema/consentd-v1.schema.json","##,
            ##"  "title": "consentd policy file (apiVersion \##(PolicyParser.apiVersion))","##,
            ##"  "description": "A Taxonomy, a Policy, or a PolicyTest suite (files named *_test.yaml).","##,
            ##"  "type": "object","##,
            ##"  "required": ["apiVersion", "kind"],"##,
            ##"  "properties": {"apiVersion": {"const": "\##(PolicyParser.apiVersion)"}, "kind": {"enum": \##(list(PolicyKeys.kinds))}},"##,
            ##"  "oneOf": [\##(PolicyKeys.kinds.map { ##"{"$ref": "#/$defs/\##($0)"}"## }.joined(separator: ", "))],"##,
            ##"  "$defs": {"##,
        ]
        for (index, (name, schema)) in defs.enumerated() {
            let body = schema.replacingOccurrences(of: "\n", with: "\n    ")
            lines.append("    \(quoted(name)): \(body)" + (index == defs.count - 1 ? "" : ","))
        }
        lines += ["  }", "}", ""]
        return lines.joined(separator: "\n")
    }()

    /// A mapping of `table`'s keys and nothing else.
    static func object(_ table: PolicyKeys.Table, nullable: Bool = false, extra: [(String, String)] = []) -> String {
        var members = [(##""type""##, nullable ? ##"["object", "null"]"## : ##""object""##), (##""additionalProperties""##, "false")]
        if !table.required.isEmpty { members.append((##""required""##, list(table.required))) }
        let properties = table.keys.map { "    \(quoted($0.name)): \($0.schema)" }.joined(separator: ",\n")
        members.append((##""properties""##, "{\n" + properties + "\n  }"))
        members += extra.map { (quoted($0.0), $0.1) }
        return "{\n" + members.map { "  \($0.0): \($0.1)" }.joined(separator: ",\n") + "\n}"
    }

    /// A JSON string.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A JSON array of strings.
    static func list(_ words: [String]) -> String { "[" + words.map(quoted).joined(separator: ", ") + "]" }
}
