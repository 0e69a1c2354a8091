import ConsentModel
import Foundation
@testable import PolicyEngine
import Testing

/// The JSON Schema is generated from the parser's key tables: each mapping the parser reads
/// is a `$defs` entry with exactly the parser's keys, its required keys, and the model's words.
@Suite struct PolicySchemaTests {
    static func schema() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(PolicySchema.json.utf8)) as? [String: Any])
    }

    static func definition(_ name: String) throws -> [String: Any] {
        let defs = try #require(try schema()["$defs"] as? [String: Any])
        return try #require(defs[name] as? [String: Any], "no $defs/\(name)")
    }

    @Test func everyMappingTheParserReadsHasItsKeysInTheSchema() throws {
        let tables: [(String, PolicyKeys.Table)] = [
            ("Taxonomy", PolicyKeys.taxonomy), ("purposeNode", PolicyKeys.purposeNode), ("dataNode", PolicyKeys.dataNode),
            ("Policy", PolicyKeys.policy), ("rule", PolicyKeys.rule), ("unless", PolicyKeys.unless),
            ("PolicyTest", PolicyKeys.test), ("record", PolicyKeys.record), ("case", PolicyKeys.testCase),
            ("request", PolicyKeys.request), ("expect", PolicyKeys.expect),
        ]
        for (name, table) in tables {
            let definition = try Self.definition(name)
            let properties = try #require(definition["properties"] as? [String: Any])
            #expect(Set(properties.keys) == Set(table.names), "\(name)")
            #expect(Set(definition["required"] as? [String] ?? []) == Set(table.required), "\(name)")
            #expect(definition["additionalProperties"] as? Bool == false, "\(name): unknown keys must be refused, as the parser refuses them")
        }
    }

    @Test func enumeratedWordsAreTheModels() throws {
        func words(_ def: String, _ key: String) throws -> [String] {
            let properties = try #require(try Self.definition(def)["properties"] as? [String: Any])
            return try #require((properties[key] as? [String: Any])?["enum"] as? [String], "\(def).\(key)")
        }
        #expect(try words("expect", "reason") == ReasonCode.allCases.map(\.description))
        #expect(try words("record", "basis") == LegalBasis.allCases.map(\.description))
        #expect(try words("rule", "basis") == LegalBasis.allCases.filter { $0 != .consent }.map(\.description))
        #expect(try words("record", "choice") == Choice.allCases.map(\.description))
        #expect(Set(try Self.definition("unless")["properties"].flatMap { ($0 as? [String: Any])?.keys }.map(Array.init) ?? []) == Set(["consent", "any_of"] + RequestSignal.allCases.map(\.rawValue)))
    }

    /// A purpose node's keys are not a data category's (the schema once shared one node).
    @Test func purposeAndDataCategoryNodesAreApart() throws {
        let taxonomy = """
        apiVersion: consentd/v1
        kind: Taxonomy
        purposes:
          p: {sensitive: true}
        data_categories:
          d: {sale_or_sharing: true}
        """
        let diagnostics = PolicyParser.parse(taxonomy, file: "t.yaml").diagnostics
        #expect(diagnostics.filter { $0.code == "unknown-key" }.count == 2, "\(diagnostics)")
        let purpose = try #require(try Self.definition("purposeNode")["properties"] as? [String: Any])
        #expect(purpose["sensitive"] == nil && purpose["sale_or_sharing"] != nil)
    }
}
