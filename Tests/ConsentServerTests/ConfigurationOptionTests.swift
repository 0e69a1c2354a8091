import ConsentServer
import Foundation
import Testing

/// The daemon's options live in one table; the README, the parser and the defaults follow it.
@Suite struct ConfigurationOptionTests {
    static let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("README.md")

    @Test func theReadmeOptionTableIsTheTable() throws {
        let text = try String(contentsOf: Self.readme, encoding: .utf8)
        let begin = try #require(text.range(of: "<!-- options:begin -->\n"))
        let end = try #require(text.range(of: "<!-- options:end -->"))
        let table = String(text[begin.upperBound..<end.lowerBound]).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(table == ConfigurationOption.markdownTable(), "replace the README's table with:\n\(ConfigurationOption.markdownTable())")
    }

    @Test func namesAreUniqueAndSpeltOneWay() {
        let names = ConfigurationOption.all.map(\.name)
        #expect(Set(names).count == names.count)
        for option in ConfigurationOption.all {
            #expect(option.name.allSatisfy { $0.isLowercase || $0 == "-" }, "\(option.name)")
            // A repeatable id is given once per id on the command line and as a list in the file,
            // under the same singular name (the file once said admin-uids where the flag said --admin-uid).
            if option.kind == .ids { #expect(!option.name.hasSuffix("s"), "\(option.name)") }
        }
    }

    /// Every option sets the field its default is read from: a value given is the value shown.
    @Test func everyOptionSetsWhatItShows() throws {
        for option in ConfigurationOption.all {
            var configuration = ServerConfiguration()
            let sample: String
            switch option.kind {
            case .text: sample = "/tmp/x-\(option.name)"
            case .integer: sample = "4242"
            case .number: sample = "0.25"
            case .octal: sample = "640"
            case let .choice(words): sample = words.last!
            case .ids: sample = "7"
            case .flag: sample = option.value(in: configuration) == "on" ? "false" : "true"
            }
            try option.set(sample, in: &configuration)
            let shown = option.value(in: configuration)
            switch option.kind {
            case .flag: #expect(shown == (sample == "true" ? "on" : "off"), "\(option.name)")
            default: #expect(shown == sample, "\(option.name)")
            }
            #expect(configuration != ServerConfiguration(), "\(option.name) changed nothing")
        }
    }

    @Test func badValuesSayWhatWasExpected() {
        let cases: [(String, String, String)] = [
            ("max-frame-size", "1MB", "expected a whole number"),
            ("idle-timeout", "nan", "expected a number"),
            ("socket-mode", "999", "is not an octal permission"),
            ("receipt-subject", "plain", "is not raw, hash or omit"),
            ("admin-uid", "-1", "is not a numeric id"),
            ("allow-any-admin", "yes", "expected true or false"),
        ]
        for (name, text, expected) in cases {
            var configuration = ServerConfiguration()
            #expect(throws: ConfigurationOptionError.self) { try ConfigurationOption.named(name)!.set(text, in: &configuration) }
            do {
                try ConfigurationOption.named(name)!.set(text, in: &configuration)
            } catch {
                #expect(error.description.hasPrefix("\(name): ") && error.description.contains(expected), "\(error)")
            }
            #expect(configuration == ServerConfiguration(), "a refused value changed the configuration")
        }
    }
}
