import ArgumentParser
import PolicyEngine

/// `consentctl policy schema`
struct PolicySchemaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema of policy files (Taxonomy, Policy, PolicyTest).",
        discussion: """
        Point your editor's YAML language server at it, e.g. with a first line \
        `# yaml-language-server: $schema=./consentd-v1.schema.json`, to get completion and \
        validation while editing. The same schema is committed as schema/consentd-v1.schema.json.
        """
    )

    func run() throws {
        print(PolicySchema.json, terminator: "")
    }
}
