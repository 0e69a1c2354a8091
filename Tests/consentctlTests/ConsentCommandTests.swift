import ConsentModel
import ConsentStore
import ConsentWorkload
import Foundation
import Testing

/// A scratch directory for one test.
final class Scratch {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("consentctl-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func write(_ name: String, _ text: String) throws -> String {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
        return path(name)
    }
}

@Suite struct ConsentCommandTests {
    /// An argument that is not UTF-8 is refused, never repaired into another customer's id:
    /// `erase $'a\xfe'` once erased the customer `a\u{FFFD}`.
    @Test func anArgumentThatIsNotUTF8IsRefusedNotRepaired() throws {
        let scratch = Scratch()
        let store = scratch.path("c.sqlite")
        #expect(try CLI.run(["consent", "grant", "a\u{FFFD}", "marketing", "--store", store]).status == 0)
        for command in ["erase", "history"] {
            let shell = try CLI.run(["-c", "exec \"$0\" consent \(command) \"$(printf 'a\\376')\" --store \"$1\"", CLI.binary.path, store], executable: "/bin/sh")
            #expect(shell.status == 64 && shell.stderr.contains("argument 3 is not valid UTF-8"), "\(command): \(shell.status) \(shell.stderr)")
            #expect(!shell.stdout.contains("marketing"), "\(command) showed the other customer's records")
        }
        let history = try CLI.run(["consent", "history", "a\u{FFFD}", "--store", store])
        #expect(history.stdout.contains("grant  marketing"), "the other customer's record is still there: \(history.stdout)")
    }

    /// An invalid subject is refused with the daemon's words, with or without a daemon.
    @Test func historyOfAnInvalidSubjectIsAnErrorNotNoRecords() throws {
        let scratch = Scratch()
        let output = try CLI.run(["consent", "history", "bad\u{1}id", "--store", scratch.path("c.sqlite")])
        #expect(output.status != 0)
        #expect(output.stderr.contains("subject_id must not contain control characters"), "\(output.stderr)")
        #expect(!output.stdout.contains("no records"))
    }

    @Test func grantWithdrawHistoryAndEraseThroughTheCLI() throws {
        let scratch = Scratch()
        let store = scratch.path("c.sqlite")
        var output = try CLI.run(["consent", "grant", "alice", "marketing", "--store", store, "--at", "2026-01-01T00:00:00Z", "--notice-version", "3", "--source", "web"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout == "recorded #1: grant marketing for alice at 2026-01-01T00:00:00Z\n")
        output = try CLI.run(["consent", "withdraw", "alice", "marketing.email", "--data", "user.contact.email", "--store", store, "--at", "2026-02-01T00:00:00Z", "--expires", "2027-01-01T00:00:00Z"])
        #expect(output.status == 0, "\(output.stderr)")
        output = try CLI.run(["consent", "history", "alice", "--store", store])
        #expect(output.stdout.contains("#1  2026-01-01T00:00:00Z  grant  marketing  via web  notice 3"))
        #expect(output.stdout.contains("#2  2026-02-01T00:00:00Z  deny  marketing.email [user.contact.email]  expires 2027-01-01T00:00:00Z  via cli"))
        // As of a past instant: only what the store knew then (these were stored today).
        output = try CLI.run(["consent", "history", "alice", "--store", store, "--at", "2026-01-15T00:00:00Z", "--format", "json"])
        #expect((try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])?.isEmpty == true)
        output = try CLI.run(["consent", "history", "alice", "--store", store, "--at", "2099-01-01T00:00:00Z", "--format", "json"])
        let json = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]]
        #expect(json?.count == 2)
        #expect(json?.first?["valid"] as? Bool == true)
        #expect(json?.last?["valid"] as? Bool == false)  // the withdrawal expired in 2027
        output = try CLI.run(["consent", "erase", "alice", "--store", store])
        #expect(output.stdout.hasPrefix("erased 2 records of alice"))
        output = try CLI.run(["consent", "history", "alice", "--store", store])
        #expect(output.stdout.contains("no records for alice"))
        #expect(output.stdout.contains(": 2 records (#3)"))
    }

    @Test func keysOutsideTheTaxonomyAreRejectedWithAHint() throws {
        let scratch = Scratch()
        let output = try CLI.run(["consent", "grant", "alice", "marketing.emial", "--store", scratch.path("c.sqlite"), "--policies", "Policies"])
        #expect(output.status == 1)
        #expect(output.stderr.contains("purpose 'marketing.emial' is not in the taxonomy of Policies; did you mean 'marketing.email'?"))
        let unchecked = try CLI.run(["consent", "grant", "alice", "marketing.emial", "--store", scratch.path("c.sqlite"), "--no-taxonomy-check"])
        #expect(unchecked.status == 0)
    }

    @Test func importReportsBadLinesByNumberAndKeepsTheRest() throws {
        let scratch = Scratch()
        let file = try scratch.write("in.jsonl", """
            {"subject":"a","purpose":"marketing","choice":"grant","at":"2026-01-01T00:00:00Z"}
            {"subject":"b","purpose":"marketing","choice":"maybe","at":"2026-01-01T00:00:00Z"}

            {"subject":"c","purpose":"marketing","choice":"grant","at":"2026-01-01T00:00:00Z","colour":"red"}
            {"subject":"d","purpose":"marketing","choice":"grant","at":"yesterday"}
            not json
            {"subject":"e","purpose":"marketing.nope","choice":"grant","at":"2026-01-01T00:00:00Z"}
            {"subject":"f\\u00e9","purpose":"analytics","data":"user.behavior","choice":"deny","at":"2026-01-01T00:00:00Z","expires":"2026-06-01T00:00:00Z","notice_version":2}
            """)
        let store = scratch.path("c.sqlite")
        let output = try CLI.run(["consent", "import", file, "--store", store, "--policies", "Policies"])
        #expect(output.status == 2)
        let errors = output.stderr.split(separator: "\n").map(String.init)
        #expect(errors.count == 5, "\(output.stderr)")
        #expect(errors.contains { $0.hasPrefix("\(file):2: error: choice must be grant or deny") })
        #expect(errors.contains { $0.hasPrefix("\(file):4: error: unknown key 'colour'") })
        #expect(errors.contains { $0.hasPrefix("\(file):5: error: 'at' is not an RFC 3339 time") })
        #expect(errors.contains { $0.hasPrefix("\(file):6: error: invalid JSON at column 1") })
        #expect(errors.contains { $0.hasPrefix("\(file):7: error: purpose 'marketing.nope' is not in the taxonomy") })
        #expect(output.stdout.hasPrefix("imported 2 records, rejected 5 of 7 lines"))
        let opened = try SQLiteConsentStore(path: store)
        #expect(try opened.history(of: "fé").first?.expiresAt == Timestamp(rfc3339: "2026-06-01T00:00:00Z"))
        #expect(try opened.recordCount() == 2)
    }

    @Test func strictImportIsAllOrNothing() throws {
        let scratch = Scratch()
        let file = try scratch.write("in.jsonl", """
            {"subject":"a","purpose":"marketing","choice":"grant","at":"2026-01-01T00:00:00Z"}
            {"subject":"b","purpose":"marketing","choice":"grant","at":"2026-01-01T00:00:00Z"
            """)
        let store = scratch.path("c.sqlite")
        let output = try CLI.run(["consent", "import", file, "--store", store, "--strict", "--no-taxonomy-check"])
        #expect(output.status == 1)
        #expect(output.stderr.contains("line 2: invalid JSON"))
        #expect(output.stderr.contains("nothing was imported (--strict)"))
        #expect(try SQLiteConsentStore(path: store).recordCount() == 0)
    }

    /// An import that stores nothing says so, rather than naming a store sequence.
    @Test func anImportThatStoresNothingSaysSo() throws {
        let scratch = Scratch()
        let file = try scratch.write("in.jsonl", """
            {"subject":"a","purpose":"marketing","choice":"maybe","at":"2026-01-01T00:00:00Z"}
            """)
        let output = try CLI.run(["consent", "import", file, "--store", scratch.path("c.sqlite"), "--no-taxonomy-check"])
        #expect(output.status == 2)
        #expect(output.stdout.hasPrefix("imported 0 records, rejected 1 of 1 lines") && output.stdout.contains("nothing was stored"), "\(output.stdout)")
        #expect(!output.stdout.contains("store sequence"))
    }

    @Test func exportAndImportRoundTripThroughCSVAndJSONLines() throws {
        let scratch = Scratch()
        let source = scratch.path("source.sqlite")
        var records: [ConsentRecord] = []
        for (index, record) in SyntheticPopulation(purposes: ["marketing", "marketing.email", "analytics"], dataCategories: ["user", "user.contact"], subjects: 200, seed: 9, now: Timestamp(rfc3339: "2026-06-01T00:00:00Z")!).enumerated() {
            var record = record
            record.sequence = 0
            if index % 7 == 0 { record.evidence = "tc,\"string\"\nline \(index)" }
            records.append(record)
        }
        _ = try SQLiteConsentStore(path: source).append(records)
        for format in ["csv", "jsonl"] {
            let file = scratch.path("export.\(format)")
            var output = try CLI.run(["consent", "export", file, "--store", source])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stdout.hasPrefix("exported \(records.count) records"))
            let target = scratch.path("target-\(format).sqlite")
            output = try CLI.run(["consent", "import", file, "--store", target, "--no-taxonomy-check", "--batch-size", "97"])
            #expect(output.status == 0, "\(output.stderr)")
            let imported = try SQLiteConsentStore(path: target)
            for subject in Set(records.map(\.subject)) {
                let original = try SQLiteConsentStore(path: source).history(of: subject)
                let copy = try imported.history(of: subject)
                #expect(copy.map { [$0.purpose, $0.dataCategory ?? "", $0.choice.description, $0.recordedAt.rfc3339, $0.expiresAt?.rfc3339 ?? "", $0.source, $0.evidence ?? ""] }
                        == original.map { [$0.purpose, $0.dataCategory ?? "", $0.choice.description, $0.recordedAt.rfc3339, $0.expiresAt?.rfc3339 ?? "", $0.source, $0.evidence ?? ""] })
            }
        }
    }

    @Test func generateIsDeterministicPerSeed() throws {
        let scratch = Scratch()
        for name in ["a.jsonl", "b.jsonl"] {
            let output = try CLI.run(["consent", "generate", "--subjects", "50", "--seed", "4", "--out", scratch.path(name), "--now", "2026-06-01T00:00:00Z"])
            #expect(output.status == 0, "\(output.stderr)")
        }
        let a = try String(contentsOfFile: scratch.path("a.jsonl"), encoding: .utf8)
        #expect(a == (try String(contentsOfFile: scratch.path("b.jsonl"), encoding: .utf8)))
        #expect(a.split(separator: "\n").count >= 50)
    }
}
