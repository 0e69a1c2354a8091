import ArgumentParser
import ConsentModel
import ConsentWorkload
import Foundation

/// `consentctl policy generate` — a large synthetic policy set, for reload and scale tests.
struct PolicyGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a synthetic policy set (taxonomy + rules) of a given size, for load and reload tests.",
        discussion: """
        The set compiles without errors: a three-level purpose tree, a data tree, jurisdiction \
        groups, and a mix of opt-in, opt-out and legal-basis permissions and prohibitions with \
        `unless` exceptions, over random scopes. The same seed gives the same files.
        """
    )

    @Option(help: "Number of rules.") var rules = 1000
    @Option(help: "Number of purposes (at least 3).") var purposes = 200
    @Option(help: "Number of data categories (at least 3).") var dataCategories = 60
    @Option(help: "Seed of the generator.") var seed: UInt64 = 1
    @Option(help: "Directory to write (created; existing *.yaml files in it are replaced).") var out: String

    func validate() throws {
        guard rules >= 1, rules <= 1_000_000 else { throw ValidationError("--rules must be between 1 and 1000000") }
        guard purposes >= 3, dataCategories >= 3 else { throw ValidationError("--purposes and --data-categories must be at least 3") }
    }

    func run() throws {
        var rng = SplitMix64(seed: seed)
        func tree(_ root: String, _ count: Int) -> [String] {
            var keys = [root]
            var level1: [String] = []
            var level2: [String] = []
            while keys.count < count {
                let roll = rng.next() % 10
                if level1.isEmpty || roll < 2 {
                    let key = "\(root).g\(level1.count)"
                    level1.append(key)
                    keys.append(key)
                } else if level2.isEmpty || roll < 6 {
                    let parent = level1[Int(rng.next() % UInt64(level1.count))]
                    let key = "\(parent).s\(level2.count)"
                    level2.append(key)
                    keys.append(key)
                } else {
                    let parent = level2[Int(rng.next() % UInt64(level2.count))]
                    keys.append("\(parent).l\(keys.count)")
                }
            }
            return keys
        }
        let purposeKeys = tree("p", purposes)
        let dataKeys = tree("d", dataCategories)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var taxonomy = "apiVersion: consentd/v1\nkind: Taxonomy\npurposes:\n"
        for key in purposeKeys { taxonomy += "  \(key): {}\n" }
        taxonomy += "data_categories:\n"
        for key in dataKeys { taxonomy += "  \(key): {}\n" }
        taxonomy += "jurisdictions:\n  EU-CORE: [DE, FR, NL, BE, IT, ES]\n  US-GROUP: [US-CA, US-CO, US-VA, US-TX]\n"
        try taxonomy.write(toFile: out + "/taxonomy.yaml", atomically: true, encoding: .utf8)
        let places = ["[EU-CORE]", "[US-GROUP]", "[US-*]", "[DE]", "[GB]", "[JP, KR]", nil, nil]
        var policy = "apiVersion: consentd/v1\nkind: Policy\nname: generated\nrules:\n"
        for index in 0..<rules {
            let purpose = purposeKeys[Int(rng.next() % UInt64(purposeKeys.count))]
            var lines = ["  - id: rule-\(index)"]
            let deny = rng.next() % 10 == 0
            lines.append("    effect: \(deny ? "deny" : "allow")")
            lines.append("    purposes: [\(purpose)]")
            if rng.next() % 2 == 0 { lines.append("    data: [\(dataKeys[Int(rng.next() % UInt64(dataKeys.count))])]") }
            if let place = places[Int(rng.next() % UInt64(places.count))] { lines.append("    jurisdictions: \(place)") }
            if deny {
                if rng.next() % 2 == 0 { lines.append("    unless: {consent: opt_in}") }
            } else {
                switch rng.next() % 4 {
                case 0: lines.append("    basis: legitimate_interest")
                case 1: lines.append("    consent: opt_out\n    unless: {gpc: true}")
                default: lines.append("    consent: opt_in\n    max_age: 395d")
                }
            }
            policy += lines.joined(separator: "\n") + "\n"
        }
        try policy.write(toFile: out + "/rules.yaml", atomically: true, encoding: .utf8)
        print("wrote \(rules) rules over \(purposeKeys.count) purposes and \(dataKeys.count) data categories to \(out)")
    }
}
