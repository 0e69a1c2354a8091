import ConsentModel
import ConsentWire
import ConsentWorkload
import Foundation
import Testing
@testable import consentctl

/// `consentctl bench`: argument handling, the open-loop schedule, the wire scan and the
/// histogram output on a tiny real run. No timing assertions.
@Suite struct BenchTests {
    @Test func mixesParseAndRejectNonsense() throws {
        let mix = try WorkloadMix(parsing: "check=90,batch=5,list_uses=4,record=1")
        #expect(mix.weights == [.check: 90, .batch: 5, .listUses: 4, .record: 1])
        #expect(mix.description == "check=90,batch=5,list_uses=4,record=1")
        for bad in ["check", "checks=1", "check=-1", "check=0", "check=1,check=2", "check=x"] {
            #expect(throws: BenchUsageError.self, "\(bad)") { try WorkloadMix(parsing: bad) }
        }
        var rng = ConsentModelRNG(seed: 3)
        var counts: [RequestKind: Int] = [:]
        for _ in 0..<10_000 { counts[mix.pick(&rng.generator), default: 0] += 1 }
        #expect((8_500...9_500).contains(counts[.check] ?? 0))
        #expect((counts[.record] ?? 0) > 0)
    }

    @Test func theOpenLoopScheduleIsFixedInAdvance() {
        let schedule = OpenLoopSchedule(start: 1_000, ratePerSecond: 4_000)
        #expect(schedule.intendedTime(of: 0) == 1_000)
        #expect(schedule.intendedTime(of: 1) == 251_000)
        #expect(schedule.intendedTime(of: 4_000) == 1_000_001_000)
        let odd = OpenLoopSchedule(start: 0, ratePerSecond: 3)
        #expect(odd.intendedTime(of: 3) == 1_000_000_000)
        #expect(odd.intendedTime(of: 1) == 333_333_333)
    }

    @Test func theResponseScanReadsIdsDecisionsAndErrors() throws {
        var response = Consentd_V1_Response()
        response.id = 300
        response.check = Consentd_V1_CheckResponse.with { $0.decision = .allow; $0.ruleID = "r"; $0.policyRevision = "x" }
        var bytes: [UInt8] = try response.serializedBytes()
        var summary = bytes.withUnsafeBytes { ResponseSummary.scan($0) }
        #expect(summary?.id == 300)
        #expect(summary?.allowed == 1)
        response.checkBatch = Consentd_V1_CheckBatchResponse.with {
            $0.results = [.with { $0.decision = .deny }, .with { $0.decision = .allow }, .with { $0.decision = .deny }]
        }
        bytes = try response.serializedBytes()
        summary = bytes.withUnsafeBytes { ResponseSummary.scan($0) }
        #expect(summary?.allowed == 1)
        #expect(summary?.denied == 2)
        bytes = try Consentd_V1_Response.error(id: 5, .permissionDenied, "no").serializedBytes()
        summary = bytes.withUnsafeBytes { ResponseSummary.scan($0) }
        #expect(summary?.id == 5)
        #expect(summary?.errorCode == Consentd_V1_ErrorCode.permissionDenied.rawValue)
        #expect([UInt8]([0x08, 0xFF]).withUnsafeBytes { ResponseSummary.scan($0) } == nil)
    }

    @Test func badArgumentsAreUsageErrors() throws {
        for arguments in [["--connections", "0"], ["--depth", "0"], ["--rate", "-5"], ["--rate", "100", "--depth", "8"], ["--mix", "check=0"], ["--subjects", "5", "--population", "x"],
                          ["--rate", "inf"], ["--rate", "nan"], ["--duration", "inf"], ["--visibility", "consentd.sock"],
                          ["--soak", "5s"], ["--soak", "forever"], ["--soak", "1m", "--sample-every", "0"], ["--spin", "5"],
                          // Output files that cannot be written are refused before the run, not after it.
                          ["--soak", "30m", "--rate", "100", "--report", "/nonexistent-dir/soak.html"], ["--json", "/etc/hostname/consentd.json"], ["--hdr", "/"]] {
            let output = try CLI.run(["bench"] + arguments)
            #expect(output.status == 64, "\(arguments): \(output.stderr)")
        }
    }

    @Test func aTinyRunWritesJSONAndAnHdrHistogram() throws {
        let daemon = try DaemonProcess()
        let json = daemon.directory.path("bench.json")
        let hdr = daemon.directory.path("bench.hdr")
        let output = try daemon.ctl(["bench", "--duration", "0.4", "--warmup", "0.1", "--connections", "2", "--depth", "4", "--subjects", "50", "--json", json, "--hdr", hdr, "--mix", "check=80,batch=10,list_uses=5,record=5", "--batch", "8"])
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
        #expect(output.stdout.contains("echo floor"))
        #expect(output.stdout.contains("ratio to floor"))
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
        let figures = report?["daemon"] as? [String: Any]
        #expect((figures?["requests"] as? Int ?? 0) > 0)
        #expect((figures?["latency_microseconds"] as? [String: Any])?["p99.99"] != nil)
        #expect(report?["throughput_ratio_to_floor"] is Double)
        #expect((figures?["errors"] as? [String: Any])?.isEmpty == true)
        let distribution = try String(contentsOfFile: hdr, encoding: .utf8)
        #expect(distribution.contains("Value"))
        #expect(distribution.contains("Percentile"))
        #expect(distribution.contains("#[Max"))
        // Open loop too.
        let open = try daemon.ctl(["bench", "--duration", "0.3", "--warmup", "0", "--rate", "2000", "--connections", "3", "--no-floor", "--json", json])
        #expect(open.status == 0, "\(open.stderr)")
        #expect(open.stdout.contains("open loop at 2000 requests/s"))
        // The generator's own lateness is reported beside the daemon's latency.
        #expect(open.stdout.contains("send lag"))
        let openReport = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
        let openFigures = openReport?["daemon"] as? [String: Any]
        #expect((openFigures?["send_lag_microseconds"] as? [String: Any])?["p99"] is Double)
        #expect((openFigures?["requests"] as? Int ?? 0) >= 500, "\(String(describing: openFigures))")
        #expect(((openFigures?["answers_per_second"] as? [Int]) ?? []).reduce(0, +) == openFigures?["requests"] as? Int)
        #expect(daemon.terminate() == 0)
    }

    /// --visibility between two daemons: on one store it measures (grants through A, allowed by
    /// B); against a daemon on another store it ends with the run (not 10 s per grant later) and
    /// fails, saying so.
    @Test func visibilityMeasuresAndSaysWhenBNeverAllows() throws {
        let a = try DaemonProcess()
        let b = try DaemonProcess(arguments: ["--store", a.directory.path("consentd.sqlite")])
        let elsewhere = try DaemonProcess()
        var output = try a.ctl(["bench", "--socket", a.socket, "--visibility", b.socket, "--rate", "50", "--duration", "0.5"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.hasPrefix("visibility: ") && output.stdout.contains("p99"), "\(output.stdout)")
        let started = Date()
        output = try a.ctl(["bench", "--socket", a.socket, "--visibility", elsewhere.socket, "--rate", "50", "--duration", "0.5"])
        #expect(output.status == 1)
        #expect(output.stderr.contains("does it follow the same store?"), "\(output.stderr)")
        #expect(Date().timeIntervalSince(started) < 8, "the probe outlived --duration by more than its bound")
        output = try a.ctl(["bench", "--socket", a.socket, "--visibility", a.directory.path("missing.sock"), "--duration", "0.5"])
        #expect(output.status == 69, "\(output.stderr)")
        #expect(a.terminate() == 0 && b.terminate() == 0 && elsewhere.terminate() == 0)
    }

    /// A short soak: samples of the daemon's memory, open files and receipts disk use, the
    /// curves, and a verdict — failing (exit 1, saying which bound) when the receipts directory
    /// passes its budget; passing when every bound holds.
    @Test func aSoakSamplesTheDaemonAndFailsWhenABoundBreaks() throws {
        let daemon = try DaemonProcess(arguments: ["--receipts", "receipts"])
        let receipts = daemon.directory.path("receipts")
        let json = daemon.directory.path("soak.json")
        var output = try daemon.ctl(["bench", "--soak", "10s", "--sample-every", "1", "--rate", "500", "--subjects", "200", "--receipts-dir", receipts,
                                     "--receipt-budget", "1", "--json", json])
        #expect(output.status == 1, "\(output.stdout)\(output.stderr)")
        #expect(output.stdout.contains("SOAK FAILED: the receipts directory reached"), "\(output.stdout)")
        #expect(output.stdout.contains("RSS MiB") && output.stdout.contains("open files") && output.stdout.contains("receipts MiB"))
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
        let samples = report?["samples"] as? [[String: Any]] ?? []
        #expect(samples.count >= 9, "\(samples.count) samples")
        #expect(samples.allSatisfy { ($0["rss_bytes"] as? Int ?? 0) > 1 << 20 && ($0["open_files"] as? Int ?? 0) > 3 })
        #expect((samples.last?["records"] as? Int ?? 0) > (samples.first?["records"] as? Int ?? 0), "no consent writes in the mix")
        output = try daemon.ctl(["bench", "--soak", "10s", "--sample-every", "2", "--rate", "500", "--skip-load", "--subjects", "200", "--receipts-dir", receipts])
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
        #expect(output.stdout.contains("soak passed: every bound held") && output.stdout.contains("errors: none"), "\(output.stdout)")
        #expect(daemon.terminate() == 0)
    }

    @Test func inProcessRunsTheSameWorkloadWithoutASocket() throws {
        let output = try CLI.run(["bench", "--in-process", "--duration", "0.3", "--warmup", "0.05", "--subjects", "200", "--batch", "16"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.hasPrefix("in-process:"))
    }
}

/// SplitMix64 from ConsentWorkload, wrapped so the test can pass it inout.
struct ConsentModelRNG {
    var generator: ConsentWorkload.SplitMix64
    init(seed: UInt64) { generator = ConsentWorkload.SplitMix64(seed: seed) }
}
