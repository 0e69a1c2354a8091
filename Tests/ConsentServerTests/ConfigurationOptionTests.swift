@testable import ConsentServer
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
            ("idle-timeout", "nan", "expected a decimal number"),
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

    /// Values from outside are checked for range before anything computes with them (a huge
    /// max-connections once overflowed the per-uid share on the first connection).
    @Test func largeValuesAreRefusedAndTheUIDShareNeverOverflows() throws {
        var configuration = ServerConfiguration()
        try #require(ConfigurationOption.named("max-connections")).set("9223372036854775807", in: &configuration)
        #expect(configuration.problems().contains { $0.hasPrefix("max-connections: must be between 1 and 1000000") })
        #expect(configuration.effectiveConnectionsPerUID == Int.max / 4 * 3 + Int.max % 4 * 3 / 4)
        for connections in [1, 2, 3, 4, 5, 7, 1024, 1_000_000] {
            configuration.maximumConnections = connections
            #expect(configuration.effectiveConnectionsPerUID == max(1, connections * 3 / 4), "\(connections)")
        }
        for (name, value) in [("max-in-flight", "2000000"), ("max-pending-output", "4294967296"), ("max-batch-items", "1000001"), ("max-connections-per-uid", "1000001")] {
            var configuration = ServerConfiguration()
            try #require(ConfigurationOption.named(name)).set(value, in: &configuration)
            #expect(configuration.problems().contains { $0.hasPrefix(name + ": must be between") }, "\(name) \(value)")
        }
    }

    /// A time that would round to zero would mean "never" (or be raised without a word).
    @Test func timesBelowTheirResolutionAreRefused() throws {
        for (name, value) in [("frame-timeout", "0.0000001"), ("idle-timeout", "0.0001"), ("policy-poll-interval", "0.01"), ("store-poll-interval", "0.0001")] {
            var configuration = ServerConfiguration()
            try #require(ConfigurationOption.named(name)).set(value, in: &configuration)
            #expect(configuration.problems().contains { $0.hasPrefix(name + ": must be") }, "\(name) \(value)")
        }
        for (name, value) in [("frame-timeout", "0"), ("idle-timeout", "0"), ("policy-poll-interval", "0"), ("frame-timeout", "0.001"), ("policy-poll-interval", "0.05")] {
            var configuration = ServerConfiguration()
            try #require(ConfigurationOption.named(name)).set(value, in: &configuration)
            #expect(configuration.problems().isEmpty, "\(name) \(value): \(configuration.problems())")
        }
    }

    @Test func numbersAreDecimalAndValuesHoldNoControlCharacters() throws {
        var configuration = ServerConfiguration()
        let timeout = try #require(ConfigurationOption.named("idle-timeout"))
        for text in ["0x10", "0x1p4", " 5", "5s", "nan", "inf", "1e-400"] {
            #expect(throws: ConfigurationOptionError.self, "\(text)") { try timeout.set(text, in: &configuration) }
        }
        try timeout.set("1.5e2", in: &configuration)
        #expect(configuration.idleTimeout == 150)
        try timeout.set("0e5", in: &configuration)
        #expect(configuration.idleTimeout == 0)
        let mode = try #require(ConfigurationOption.named("socket-mode"))
        for text in ["-0", "+660", "0o660", "8"] {
            #expect(throws: ConfigurationOptionError.self, "\(text)") { try mode.set(text, in: &configuration) }
        }
        for text in ["s\0evil.sock", "line\nbreak", "tab\there", "del\u{7F}", "next\u{85}line", "c1\u{9F}"] {
            #expect(throws: ConfigurationOptionError.self, "\(text.debugDescription)") { try ConfigurationOption.named("socket")!.set(text, in: &configuration) }
        }
        #expect(configuration.socket == "consentd.sock")
    }

    /// The receipts directory may not overlap the policy directory: the archived sources would
    /// be read as policies, every reload would fail and the next start would be refused.
    @Test func receiptsAndPoliciesMayNotOverlap() {
        for (receipts, policies) in [("Policies/receipts", "Policies"), ("Policies", "Policies"), ("./Policies/x/../r", "Policies/"), ("r", "r/policies")] {
            var configuration = ServerConfiguration()
            configuration.policies = policies
            configuration.receipts.directory = receipts
            #expect(configuration.problems().contains { $0.contains("overlap") }, "\(receipts) \(policies)")
        }
        var configuration = ServerConfiguration()
        configuration.receipts.directory = "receipts"
        #expect(configuration.problems().isEmpty)
        // Through a link into the policy directory, below parts that do not exist yet.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("overlap-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: scratch + "/P", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try? FileManager.default.createSymbolicLink(atPath: scratch + "/plink", withDestinationPath: scratch + "/P")
        configuration.policies = scratch + "/P"
        configuration.receipts.directory = scratch + "/plink/new/sub"
        #expect(configuration.problems().contains { $0.contains("overlap") }, "a link into the policy directory")
        configuration.receipts.directory = scratch + "/other/new"
        #expect(configuration.problems().isEmpty)
        // Review 21 F3: `..` after a link is the link target's parent, as the kernel reads it.
        try? FileManager.default.createDirectory(atPath: scratch + "/P/a/b", withIntermediateDirectories: true)
        try? FileManager.default.createSymbolicLink(atPath: scratch + "/deep", withDestinationPath: scratch + "/P/a/b")
        for receipts in ["/deep/../r", "/deep/../../r", "/deep/./../r", "/deep/../missing/../r"] {
            configuration.receipts.directory = scratch + receipts
            #expect(configuration.problems().contains { $0.contains("overlap") }, "\(receipts)")
        }
        configuration.receipts.directory = scratch + "/deep/../../../r"  // P's parent: outside P
        #expect(configuration.problems().isEmpty)
    }

    /// Review 21 F4: the open-file limit is raised to fit the connections; past the hard limit
    /// the daemon says so.
    @Test func theDescriptorLimitIsFittedToTheConnectionsOrNamed() {
        #expect(SocketListener.fitDescriptorLimit(connections: 16) == nil)
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        #expect(limit.rlim_cur >= 16 + rlim_t(SocketListener.reservedDescriptors))
        guard limit.rlim_max < 1 << 40 else { return }  // unlimited: nothing can exceed it
        let warning = SocketListener.fitDescriptorLimit(connections: Int(limit.rlim_max))
        #expect(warning?.contains("does not fit the open-file limit") == true, "\(String(describing: warning))")
    }
}
