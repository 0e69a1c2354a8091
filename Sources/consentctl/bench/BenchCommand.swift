import ArgumentParser
import ConsentClient
import ConsentModel
import ConsentTransport
import ConsentStore
import ConsentWire
import ConsentWorkload
import Foundation
import Histogram
import PolicyEngine
import Synchronization

/// `consentctl bench`
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test a running consentd (or the decision core in process) and report latency percentiles.",
        discussion: """
        Closed loop (default): --connections N, each keeping --depth D requests in flight. Open \
        loop: --rate R requests per second in total on a fixed schedule, sent by one thread that \
        sleeps to each send's time (no spinning unless --spin) over all N connections; latency is \
        measured from each request's intended send time, so a stalled daemon cannot hide \
        queueing delay (coordinated omission corrected, as wrk2 does), and the generator's own \
        lateness (send lag) is reported beside it, with a warning when it is a material part. --batch K sends CheckBatch requests of K \
        items instead of single Checks; --mix weighs request kinds (check, batch, list_uses, record).

        Before the load, the same loop runs against a plain echo server on a Unix socket on this \
        machine (same framing, same client path, no decode/decide/encode) and the daemon's \
        figures are printed as ratios to that floor: on a shared, noisy machine the ratio is the \
        honest figure. --in-process runs the workload against the decision core with no socket.

        Subjects: --subjects N generates N synthetic subjects (consent generate's population) and \
        records them through the daemon first; --population FILE uses the subjects of a \
        `consent generate` file that is already imported.
        """
    )

    @Option(help: "The daemon's socket.") var socket = "consentd.sock"
    @Option(help: ArgumentHelp("Measure cross-daemon visibility instead: grants through --socket at --rate (default 100/s), each followed by Checks on this other daemon's socket until it allows; reports the delay from the acknowledgement to the first allow.", valueName: "socket"))
    var visibility: String?
    @Option(help: "Connections (threads, for --in-process).") var connections = 1
    @Option(help: "Closed loop: requests in flight per connection.") var depth = 1
    @Option(help: "Open loop: total requests per second.") var rate: Double?
    @Option(help: ArgumentHelp("Soak instead: a steady open-loop mixed load for this long (90s, 30m, 2h; default --rate 2000, --mix check=85,batch=5,list_uses=5,record=5) that samples the daemon's memory, open files, receipts disk use and throughput every --sample-every seconds, prints the curves, and fails when memory grows beyond what the new records explain, open files creep up, receipts pass --receipt-budget, or any request gets an error.", valueName: "duration")) var soak: String?
    @Option(help: ArgumentHelp("Soak: seconds between samples.", valueName: "seconds")) var sampleEvery = 5.0
    @Option(help: ArgumentHelp("Soak: the daemon's receipts directory, to sample its disk use.", valueName: "dir")) var receiptsDir: String?
    @Option(help: ArgumentHelp("Soak: fail when the receipts directory passes this many bytes (the daemon's --receipt-retention-bytes).", valueName: "bytes")) var receiptBudget: Int?
    @Option(help: ArgumentHelp("Soak: memory a new consent record may explain, in bytes (the index holds each record and its subject).", valueName: "bytes")) var bytesPerRecord = 1024
    @Option(help: ArgumentHelp("Soak: memory growth allowed whatever the records (allocator, queues filling to their bounds), MiB.", valueName: "MiB")) var rssSlack = 64
    @Option(name: .customLong("report"), help: ArgumentHelp("Also write a self-contained HTML page (inline SVG, nothing fetched): the latency percentile curve of the daemon and the echo floor, answers per second over the run, and the run's parameters.", valueName: "file.html")) var htmlReport: String?
    @Option(help: ArgumentHelp("Open loop: busy-wait this many microseconds before each send instead of sleeping to it (default 0: the sender sleeps on an absolute deadline and uses no CPU between sends; spinning takes a core from the daemon on a small machine).", valueName: "µs")) var spin: Double = 0
    @Option(help: "Seconds to measure.") var duration = 10.0
    @Option(help: "Seconds to run before measuring.") var warmup = 2.0
    @Option(help: "Items per CheckBatch (implies --mix batch=1 unless --mix is given).") var batch = 1
    @Option(help: "Request mix, e.g. check=90,batch=5,list_uses=4,record=1.") var mix: String?
    @Option(help: "Generate and record this many subjects first.") var subjects: Int?
    @Option(help: "Use the subjects of this `consent generate` file (already imported).") var population: String?
    @Flag(help: "With --subjects: the population is already in the daemon (same --seed); do not record it again.") var skipLoad = false
    @Option(help: "Seed of the population and the request mix.") var seed: UInt64 = 1
    @Option(help: "Policy directory whose taxonomy the requests use.") var policies = "Policies"
    @Option(help: "Write the report as JSON to this file.") var json: String?
    @Option(help: "Write the latency distribution in HdrHistogram text format to this file.") var hdr: String?
    @Flag(help: "Skip the echo floor.") var noFloor = false
    @Flag(help: "Run against the decision core in this process, without a socket.") var inProcess = false
    @Option(help: "With --in-process: load consent from this store file instead of generating subjects.") var store: String?
    @Option(help: "After the measurement, measure again while this many connections sit idle, and compare.") var idleConnections = 0
    @Option(help: "After the measurement, measure again while this many clients each send a Check one byte per second, and compare.") var slowClients = 0
    @Option(name: .customLong("tc-string"), help: "Every request carries a TCF TC string; repeat the option to draw each request's from several (its cost is measured against runs without).") var tcString: [String] = []
    @Option(name: .customLong("gpp"), help: "Every request carries a GPP string (repeatable, as --tc-string).") var gpp: [String] = []
    @Option(name: .customLong("us-privacy"), help: "Every request carries a US Privacy string (repeatable, as --tc-string).") var usPrivacy: [String] = []
    @Option(help: ArgumentHelp("Write the request pool as varint-delimited consentd.v1.Request frames to this file and exit (after recording the population unless --skip-load), for other load generators such as the C client's consentd-load.", valueName: "file")) var writeRequests: String?

    func validate() throws {
        guard connections >= 1, connections <= 4096 else { throw ValidationError("--connections must be between 1 and 4096") }
        guard depth >= 1, depth <= 65_536 else { throw ValidationError("--depth must be between 1 and 65536") }
        if let rate { guard rate > 0, rate <= 10_000_000 else { throw ValidationError("--rate must be a positive number of requests per second, at most 10000000") } }
        guard duration > 0, duration.isFinite else { throw ValidationError("--duration must be a positive number of seconds") }
        guard warmup >= 0, warmup.isFinite else { throw ValidationError("--warmup must be a number of seconds, not negative") }
        if let visibility {
            func resolved(_ path: String) -> String {
                guard let real = realpath(path, nil) else { return path }
                defer { free(real) }
                return String(cString: real)
            }
            if resolved(visibility) == resolved(socket) { throw ValidationError("--visibility names the socket of the daemon the grants go through (--socket): give another daemon's socket") }
        }
        guard batch >= 1, batch <= 10_000 else { throw ValidationError("--batch must be between 1 and 10000") }
        if let subjects { guard subjects >= 0 else { throw ValidationError("--subjects must not be negative") } }
        if subjects != nil && population != nil { throw ValidationError("give --subjects or --population, not both") }
        if let mix { do { _ = try WorkloadMix(parsing: mix) } catch { throw ValidationError("\(error)") } }
        guard spin >= 0, spin <= 10_000 else { throw ValidationError("--spin must be between 0 and 10000 microseconds") }
        if spin > 0 && rate == nil { throw ValidationError("--spin is for the open loop (--rate)") }
        if let soak {
            guard let seconds = parseDuration(soak), seconds >= 10, seconds.isFinite else { throw ValidationError("--soak takes a duration of at least 10 s: 90, 90s, 30m or 2h") }
            guard sampleEvery >= 0.2, sampleEvery <= seconds / 2 else { throw ValidationError("--sample-every must be at least 0.2 s and at most half the soak") }
            guard depth == 1 else { throw ValidationError("--soak is an open loop: give --rate, not --depth") }
        }
        if rate != nil && depth != 1 { throw ValidationError("--depth is for the closed loop; with --rate the schedule decides what is in flight") }
        // Output files are checked before a run that may last hours, not after it.
        for (option, path) in [("--json", json), ("--hdr", hdr), ("--report", htmlReport), ("--write-requests", writeRequests)] {
            guard let path else { continue }
            if let problem = Self.unwritable(path) { throw ValidationError("\(option) \(path): \(problem)") }
        }
    }

    /// Why `path` cannot be written (nil: it can): its directory is missing or not writable, or it
    /// is a directory or a file that cannot be written.
    static func unwritable(_ path: String) -> String? {
        var info = stat()
        if stat(path, &info) == 0 {
            if info.st_mode & S_IFMT == S_IFDIR { return "is a directory" }
            guard info.st_mode & S_IFMT == S_IFREG else { return "is not a regular file" }
            // Opened for writing (not truncated): what access(2) says is not what root may do.
            let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY)
            guard fd >= 0 else { return "cannot be written (\(String(cString: strerror(errno))))" }
            close(fd)
            return nil
        }
        let parent = (path as NSString).deletingLastPathComponent
        let directory = parent.isEmpty ? "." : parent
        guard stat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return "no directory \(directory) to write it in" }
        return access(directory, W_OK) == 0 ? nil : "cannot write in \(directory) (\(String(cString: strerror(errno))))"
    }

    var workloadMix: WorkloadMix {
        if let mix, let parsed = try? WorkloadMix(parsing: mix) { return parsed }
        return batch > 1 ? WorkloadMix(weights: [.batch: 1]) : .checksOnly
    }

    func run() throws {
        let loaded = try LoadedPolicies.load(policies, vocabulary: Vocabulary())
        guard let set = loaded.result.policySet else {
            print(loaded.result.diagnostics.text)
            throw ExitCode(1)
        }
        if let visibility {
            let probe = VisibilityProbe(writer: socket, reader: visibility, rate: rate ?? 100, duration: duration, seed: seed, set: set)
            let outcome: VisibilityProbe.Outcome
            do {
                outcome = try probe.run()
            } catch let error as ConsentClientError {
                printError("consentctl: \(error)")
                throw ExitCode(69)
            }
            print(VisibilityProbe.report(outcome, rate: rate ?? 100))
            if outcome.unseen > 0 {
                printError("consentctl: daemon B (\(visibility)) did not show \(outcome.unseen) of \(outcome.unseen + outcome.delays.count) grants made through A (\(socket)): does it follow the same store?")
                throw ExitCode(1)
            }
            return
        }
        if let soak, let seconds = parseDuration(soak) {
            try runSoak(seconds: seconds, set: set)
            return
        }
        let subjectIDs = try subjectList(set)
        let mix = workloadMix
        let pool = try RequestPool(
            mix: mix, subjects: subjectIDs, purposes: set.purposes.leaves, dataCategories: set.dataCategories.leaves,
            batchSize: batch, listUsesDecisions: set.purposes.leaves.count * set.dataCategories.leaves.count, seed: seed,
            signals: SignalChoices(tcStrings: tcString, gppStrings: gpp, usPrivacy: usPrivacy)
        )
        let shape = LoadShape(connections: connections, depth: depth, rate: rate, warmup: warmup, duration: duration, spinNanoseconds: UInt64(spin * 1000))
        let machine = ["cores": String(ProcessInfo.processInfo.activeProcessorCount), "load_average": loadAverage()]

        if inProcess {
            let result = try runInProcess(set: set, pool: pool, subjects: subjectIDs)
            try finish(BenchReport(target: "in-process", mode: "closed", connections: connections, depth: nil, rate: nil, batch: batch, mix: mix.description,
                                   subjects: subjectIDs.count, warmupSeconds: warmup, durationSeconds: duration, machine: machine, floor: nil,
                                   daemon: .init(result, errorName: errorName), throughputRatioToFloor: nil, p99RatioToFloor: nil), histogram: result.histogram)
            return
        }

        if let subjects, subjects > 0, !skipLoad { try recordPopulation(set: set, count: subjects) }
        if let writeRequests {
            var bytes: [UInt8] = []
            for request in pool.requests { bytes += FrameCodec.frame(request.body) }
            try Data(bytes).write(to: URL(fileURLWithPath: writeRequests))
            print("wrote \(pool.requests.count) requests (\(workloadMix.description)) to \(writeRequests)")
            return
        }

        var floor: LoadResult?
        if !noFloor {
            let echoPath = NSTemporaryDirectory() + "consentd-echo-\(getpid()).sock"
            let echo = try EchoServer(path: echoPath)
            defer { echo.stop() }
            var floorShape = shape
            floorShape.duration = min(duration, 5)
            floorShape.warmup = min(warmup, 1)
            floor = try runWithProgress("echo floor", socket: echoPath, pool: pool, shape: floorShape)
        }
        let result = try runWithProgress("consentd", socket: socket, pool: pool, shape: shape)
        let daemonFigures = BenchReport.Figures(result, errorName: errorName)
        let floorFigures = floor.map { BenchReport.Figures($0, errorName: errorName) }
        let benchReport = BenchReport(
            target: "consentd at \(socket)", mode: rate == nil ? "closed" : "open", connections: connections, depth: rate == nil ? depth : nil, rate: rate,
            batch: batch, mix: mix.description, subjects: subjectIDs.count, warmupSeconds: warmup, durationSeconds: duration, machine: machine,
            floor: floorFigures, daemon: daemonFigures,
            throughputRatioToFloor: floorFigures.map { (daemonFigures.requestsPerSecond / max($0.requestsPerSecond, 1) * 1000).rounded() / 1000 },
            p99RatioToFloor: floorFigures.map { (daemonFigures.latencyMicroseconds.p99 / max($0.latencyMicroseconds.p99, 0.001) * 1000).rounded() / 1000 }
        )
        try finish(benchReport, histogram: result.histogram)
        if let htmlReport { try writeHTML(htmlReport, benchReport, daemon: result, floor: floor) }

        if idleConnections > 0 || slowClients > 0 {
            let frame = FrameCodec.frame(pool.requests.first(where: { $0.kind == .check })?.body ?? [0x12, 0x00])
            let abuse = try AbuseLoad(socket: socket, idleConnections: idleConnections, slowClients: slowClients, frame: frame)
            defer { abuse.stop() }
            let abused = try runWithProgress("consentd under abuse", socket: socket, pool: pool, shape: shape)
            let figures = BenchReport.Figures(abused, errorName: errorName)
            print("")
            print("again with \(idleConnections) idle connections and \(slowClients) clients sending one byte per second (reconnected \(abuse.reconnects.load(ordering: .relaxed)) times after the daemon cut them off):")
            print(String(format: "  %.0f req/s (%.2f× the run above), p50 %.1f µs, p99 %.1f µs (%.2f× the run above), p99.9 %.1f µs",
                         figures.requestsPerSecond, figures.requestsPerSecond / max(daemonFigures.requestsPerSecond, 1),
                         figures.latencyMicroseconds.p50, figures.latencyMicroseconds.p99,
                         figures.latencyMicroseconds.p99 / max(daemonFigures.latencyMicroseconds.p99, 0.001), figures.latencyMicroseconds.values[3]))
            print(figures.errors.isEmpty ? "  errors: none" : "  errors: " + figures.errors.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
    }

    func finish(_ report: BenchReport, histogram: Histogram<UInt64>) throws {
        print(report.text)
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
        if let hdr { try hdrText(histogram).write(toFile: hdr, atomically: true, encoding: .utf8) }
    }

    /// `--soak`: the load on one thread, the samples on this one (`SoakMonitor`), then the verdict.
    func runSoak(seconds: Double, set: PolicySet) throws {
        let subjectIDs = try subjectList(set)
        let mix = try self.mix.flatMap { try? WorkloadMix(parsing: $0) } ?? WorkloadMix(parsing: "check=85,batch=5,list_uses=5,record=5")
        let pool = try RequestPool(
            mix: mix, subjects: subjectIDs, purposes: set.purposes.leaves, dataCategories: set.dataCategories.leaves,
            batchSize: max(batch, mix.description.contains("batch") && batch == 1 ? 16 : batch), listUsesDecisions: set.purposes.leaves.count * set.dataCategories.leaves.count,
            seed: seed, signals: SignalChoices(tcStrings: tcString, gppStrings: gpp, usPrivacy: usPrivacy)
        )
        if let subjects, subjects > 0, !skipLoad { try recordPopulation(set: set, count: subjects) }
        let rate = self.rate ?? 2000
        let status = try SocketOptions.parse(["--socket", socket]).connect()
        guard let pid = status.peerProcessID else {
            printError("consentctl: cannot tell the daemon's process id from its socket (SO_PEERCRED), so its memory cannot be sampled")
            throw ExitCode(69)
        }
        let monitor = SoakMonitor(pid: pid, receipts: receiptsDir, status: status)
        let shape = LoadShape(connections: connections, depth: 1, rate: rate, warmup: 0, duration: seconds, spinNanoseconds: UInt64(spin * 1000))
        let progress = LoadRunner.Progress()
        let outcome = Mutex<Result<LoadResult, Error>?>(nil)
        let socket = self.socket
        let load = Thread {
            let result = Result { try LoadRunner.run(socket: socket, pool: pool, shape: shape, progress: progress) }
            outcome.withLock { $0 = result }
        }
        load.stackSize = 1 << 20
        printError("soak: \(Int(rate)) requests/s (\(mix.description)) on \(connections) connection\(connections == 1 ? "" : "s") for \(Int(seconds)) s; daemon pid \(pid); a sample every \(sampleEvery) s")
        let started = monotonicNanoseconds()
        var samples = [monitor.sample(at: 0, answersPerSecond: 0)]
        load.start()
        var lastCount = 0, lastTime = started
        while outcome.withLock({ $0 == nil }) {
            let next = lastTime + UInt64(sampleEvery * 1e9)
            while monotonicNanoseconds() < next && outcome.withLock({ $0 == nil }) { usleep(20_000) }
            let now = monotonicNanoseconds()
            let count = progress.requests.load(ordering: .relaxed)
            let sample = monitor.sample(at: Double(now - started) / 1e9, answersPerSecond: Double(count - lastCount) / max(Double(now - lastTime) / 1e9, 1e-9))
            samples.append(sample)
            (lastCount, lastTime) = (count, now)
            if isatty(2) == 1 {
                FileHandleWriter.write(String(format: "\rsoak: %.0f s, %.0f answers/s, RSS %.1f MiB, %d open files%@\u{1B}[K", sample.seconds, sample.answersPerSecond,
                                              Double(sample.rssBytes) / 1_048_576, sample.openFiles, sample.receiptBytes.map { String(format: ", receipts %.1f MiB", Double($0) / 1_048_576) } ?? ""), fd: 2)
            }
        }
        if isatty(2) == 1 { FileHandleWriter.write("\r\u{1B}[K", fd: 2) }
        let result: LoadResult
        do {
            result = try outcome.withLock { $0! }.get()
        } catch let error as ConsentClientError {
            printError("consentctl: soak: \(error)")
            throw ExitCode(69)
        }
        let errors = result.errors.values.reduce(0, +)
        let verdict = SoakVerdict(samples: samples, baselineAfter: min(60, seconds / 10), bytesPerRecord: bytesPerRecord, slack: rssSlack << 20, receiptBudget: receiptBudget, errors: errors)
        let figures = BenchReport.Figures(result, errorName: errorName)
        print("soak: \(Int(rate)) requests/s (\(mix.description)) on \(connections) connection\(connections == 1 ? "" : "s"), \(Int(seconds)) s, \(subjectIDs.count) subjects; machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage())")
        print(String(format: "latency µs: p50 %.1f, p99 %.1f, p99.9 %.1f, max %.1f; %.0f requests/s; generator send lag p99 %.1f µs", figures.latencyMicroseconds.p50, figures.latencyMicroseconds.p99,
                     figures.latencyMicroseconds.p999, figures.latencyMicroseconds.max, figures.requestsPerSecond, figures.sendLagMicroseconds?.p99 ?? 0))
        print("")
        print(SoakText.table(samples))
        print("")
        print("RSS MiB      " + SoakText.sparkline(samples.map { Double($0.rssBytes) }))
        print("open files   " + SoakText.sparkline(samples.map { Double($0.openFiles) }))
        if samples.contains(where: { $0.receiptBytes != nil }) { print("receipts MiB " + SoakText.sparkline(samples.map { Double($0.receiptBytes ?? 0) })) }
        print("answers/s    " + SoakText.sparkline(samples.dropFirst().map(\.answersPerSecond)))
        print("")
        print("memory from the sample at \(String(format: "%.1f", verdict.baselineSeconds)) s (the warm-up: a tenth of the run, at most 60 s) to the end: grew \(verdict.rssGrowthBytes >> 10) KiB for \(verdict.recordsAdded) new records"
              + (verdict.bytesPerNewRecord.map { String(format: " (%.0f bytes per new record)", $0) } ?? "") + "; allowed \(verdict.allowedGrowthBytes >> 20) MiB")
        if let largest = verdict.largestReceiptBytes {
            print("receipts: at most \(largest >> 10) KiB on disk" + (receiptBudget.map { " (budget \($0 >> 10) KiB)" } ?? ""))
        }
        print("errors: \(errors == 0 ? "none" : figures.errors.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        if let json {
            struct SoakJSON: Encodable { var samples: [SoakSample]; var verdict: SoakVerdict; var latency: BenchReport.Figures }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            try encoder.encode(SoakJSON(samples: samples, verdict: verdict, latency: figures)).write(to: URL(fileURLWithPath: json))
        }
        if let htmlReport {
            var page = HTMLReport(
                title: "consentctl bench --soak \(soak ?? ""): \(Int(rate)) requests/s, \(mix.description)",
                parameters: [("target", "consentd at \(socket) (pid \(pid))"), ("load", "open loop, \(Int(rate)) requests/s, \(connections) connection(s), \(mix.description)"),
                             ("duration", "\(Int(seconds)) s, a sample every \(sampleEvery) s"), ("machine", "\(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage()) at the end"),
                             ("memory", "grew \(verdict.rssGrowthBytes >> 10) KiB after \(Int(verdict.baselineSeconds)) s for \(verdict.recordsAdded) new records" + (verdict.bytesPerNewRecord.map { String(format: " (%.0f bytes per record)", $0) } ?? "")),
                             ("errors", errors == 0 ? "none" : "\(errors)"), ("verdict", verdict.problems.isEmpty ? "every bound held" : verdict.problems.joined(separator: "; ")),
                             ("command", (["consentctl"] + CommandLine.arguments.dropFirst()).joined(separator: " "))],
                series: [.init(name: "consentd", color: "#d62728", histogram: result.histogram, perSecond: result.perSecond)])
            page.timeSeries = [
                .init(title: "resident memory", unit: "MiB", color: "#1f77b4", points: samples.map { ($0.seconds, Double($0.rssBytes) / 1_048_576) }),
                .init(title: "open files", unit: "descriptors", color: "#9467bd", points: samples.map { ($0.seconds, Double($0.openFiles)) }),
                .init(title: "consent records", unit: "records", color: "#2ca02c", points: samples.map { ($0.seconds, Double($0.records)) }),
            ]
            if samples.contains(where: { $0.receiptBytes != nil }) {
                page.timeSeries.append(.init(title: "receipts on disk", unit: "MiB", color: "#ff7f0e", points: samples.map { ($0.seconds, Double($0.receiptBytes ?? 0) / 1_048_576) },
                                             limit: receiptBudget.map { Double($0) / 1_048_576 }))
            }
            do { try page.html.write(toFile: htmlReport, atomically: true, encoding: .utf8) } catch {
                printError("consentctl: cannot write \(htmlReport): \(error.localizedDescription)")
                throw ExitCode(73)
            }
        }
        if !verdict.problems.isEmpty {
            for problem in verdict.problems { print("SOAK FAILED: \(problem)") }
            throw ExitCode(1)
        }
        print("soak passed: every bound held")
    }

    /// `--report`: the page of one run (`HTMLReport`).
    func writeHTML(_ path: String, _ report: BenchReport, daemon: LoadResult, floor: LoadResult?) throws {
        var series: [HTMLReport.Series] = []
        if let floor { series.append(.init(name: "echo floor", color: "#7f7f7f", histogram: floor.histogram, perSecond: floor.perSecond)) }
        series.append(.init(name: "consentd", color: "#d62728", histogram: daemon.histogram, perSecond: daemon.perSecond))
        let shape = report.mode == "open" ? "open loop, \(Int(report.rate ?? 0)) requests/s in total" : "closed loop, depth \(report.depth ?? 1) per connection"
        var parameters: [(String, String)] = [
            ("target", report.target), ("load", shape), ("connections", String(report.connections)), ("mix", report.mix),
            ("batch", String(report.batch)), ("subjects", String(report.subjects)),
            ("measured", String(format: "%.1f s after %.1f s warm-up (the floor: at most 5 s after 1 s)", report.durationSeconds, report.warmupSeconds)),
            ("machine", "\(report.machine["cores"] ?? "?") cores, load average \(report.machine["load_average"] ?? "?") (generator and daemon share them)"),
        ]
        for (name, figures) in [("consentd", report.daemon), ("echo floor", report.floor)] {
            guard let figures else { continue }
            let l = figures.latencyMicroseconds
            parameters.append(("\(name) latency µs", String(format: "p50 %.1f, p90 %.1f, p99 %.1f, p99.9 %.1f, max %.1f; %.0f requests/s", l.p50, l.p90, l.p99, l.p999, l.max, figures.requestsPerSecond)))
            if let lag = figures.sendLagMicroseconds {
                parameters.append(("\(name): generator send lag µs", String(format: "p50 %.1f, p99 %.1f, max %.1f", lag.p50, lag.p99, lag.max)))
            }
        }
        parameters.append(("command", (["consentctl"] + CommandLine.arguments.dropFirst()).joined(separator: " ")))
        parameters.append(("written", Timestamp.now().description))
        var notes: [String] = []
        for (name, figures) in [("consentd", report.daemon), ("echo floor", report.floor)] {
            if let figures, figures.generatorFellBehind, let lag = figures.sendLagMicroseconds {
                notes.append(String(format: "The generator's own send lag (p99 %.1f µs) is a material part of the %@ run's tail (p99 %.1f µs).", lag.p99, name, figures.latencyMicroseconds.p99))
            }
        }
        let page = HTMLReport(title: "consentctl bench: \(shape), \(report.connections) connection\(report.connections == 1 ? "" : "s")", parameters: parameters, series: series, notes: notes)
        do {
            try page.html.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            printError("consentctl: cannot write \(path): \(error.localizedDescription)")
            throw ExitCode(73)
        }
    }

    func errorName(_ code: Int) -> String {
        switch code {
        case -2: "UNREADABLE_RESPONSE"
        case -1: "ERROR_CODE_UNSPECIFIED"
        default: Consentd_V1_ErrorCode(rawValue: code).map { "\($0)" } ?? "ERROR_\(code)"
        }
    }

    func subjectList(_ set: PolicySet) throws -> [String] {
        if let population {
            let reader = try String(contentsOfFile: population, encoding: .utf8)
            var seen = Set<ExactString>()
            var list: [String] = []
            for line in reader.split(separator: "\n") {
                guard let record = try? JSONLines.record(from: String(line), lineNumber: 0) else { continue }
                if seen.insert(ExactString(record.subject)).inserted { list.append(record.subject) }
            }
            guard !list.isEmpty else { throw ValidationError("no subjects found in \(population)") }
            return list
        }
        let count = subjects ?? 0
        return (0..<count).map(SyntheticPopulation.subjectID)
    }

    /// Records the synthetic population through the daemon, 1 000 records per RecordConsent.
    func recordPopulation(set: PolicySet, count: Int) throws {
        let client = try SocketOptions.parse(["--socket", socket]).connect()
        let population = SyntheticPopulation(purposes: set.purposes.keys, dataCategories: set.dataCategories.keys, subjects: count, seed: seed, now: .now())
        var batch: [ConsentRecord] = []
        var recorded = 0
        var progress = ProgressLine()
        for record in population {
            var record = record
            record.sequence = 0
            record.jurisdiction = nil
            batch.append(record)
            if batch.count == 1000 {
                _ = try daemonCall { try client.record(batch) }
                recorded += batch.count
                batch.removeAll(keepingCapacity: true)
                progress.draw("recording population:", TransferProgress(records: recorded, bytes: 0, totalBytes: nil))
            }
        }
        if !batch.isEmpty { _ = try daemonCall { try client.record(batch) }; recorded += batch.count }
        progress.clear()
        printError("recorded \(recorded) consent records for \(count) subjects")
    }

    func runWithProgress(_ name: String, socket: String, pool: RequestPool, shape: LoadShape) throws -> LoadResult {
        let progress = LoadRunner.Progress()
        let done = Atomic<Bool>(false)
        let showProgress = isatty(2) == 1
        let reporter = Thread {
            var last = 0
            var elapsed = 0
            while !done.load(ordering: .relaxed) {
                usleep(250_000)
                elapsed += 250
                guard showProgress, elapsed % 1000 == 0 else { continue }
                let now = progress.requests.load(ordering: .relaxed)
                let phase = progress.measuring.load(ordering: .relaxed) ? "measuring" : "warming up"
                FileHandleWriter.write("\r\(name): \(phase), \(elapsed / 1000) s, \(now - last) requests/s\u{1B}[K", fd: 2)
                last = now
            }
            if showProgress { FileHandleWriter.write("\r\u{1B}[K", fd: 2) }
        }
        reporter.start()
        defer {
            done.store(true, ordering: .relaxed)
            while !reporter.isFinished { usleep(10_000) }
        }
        do {
            return try LoadRunner.run(socket: socket, pool: pool, shape: shape, progress: progress)
        } catch let error as ConsentClientError {
            printError("consentctl: \(name): \(error)")
            throw ExitCode(69)
        }
    }

    /// The same request pool against the decision core: decode the pre-encoded requests once,
    /// then decide on `connections` threads with the index in memory.
    func runInProcess(set: PolicySet, pool: RequestPool, subjects: [String]) throws -> LoadResult {
        let snapshot: ConsentSnapshot
        if let store {
            let opened = try SQLiteConsentStore(path: store)
            snapshot = try ConsentFeed(store: opened, vocabulary: set.vocabulary).index.snapshot()
        } else {
            var builder = ConsentSnapshotBuilder()
            let population = SyntheticPopulation(purposes: set.purposes.keys, dataCategories: set.dataCategories.keys, subjects: subjects.count, seed: seed, now: .now())
            for record in population { builder.add(subject: record.subject, record.compact(in: set.vocabulary)) }
            snapshot = builder.build()
        }
        // Decode the wire requests into model requests (checks and batch items).
        var questions: [[DecisionRequest]] = []
        for encoded in pool.requests {
            let request = try Consentd_V1_Request(serializedBytes: encoded.body)
            switch request.method {
            case let .check(check)?:
                questions.append([DecisionRequest(subject: check.subjectID, purpose: check.purpose, dataCategory: check.dataCategory, context: try check.context.model())])
            case let .checkBatch(batch)?:
                let context = try batch.context.model()
                questions.append(batch.items.map { DecisionRequest(subject: $0.subjectID, purpose: $0.purpose, dataCategory: $0.dataCategory, context: context) })
            default:
                continue
            }
        }
        guard !questions.isEmpty else { throw ValidationError("--in-process runs check and batch requests only") }
        let allQuestions = questions
        let results = Mutex<[LoadResult]>([])
        let group = DispatchGroup()
        let now = Timestamp.now()
        let start = monotonicNanoseconds()
        let measureFrom = start + UInt64(warmup * 1e9)
        let end = measureFrom + UInt64(duration * 1e9)
        for thread in 0..<connections {
            group.enter()
            Thread {
                var result = LoadResult()
                var index = thread * 7919
                var measuring = false
                while true {
                    let batch = allQuestions[index % allQuestions.count]
                    index += 1
                    let started = monotonicNanoseconds()
                    var allowed = 0
                    for question in batch {
                        let decision: Decision
                        switch set.resolve(question, now: now) {
                        case let .success(resolved):
                            var subject = question.subject
                            decision = subject.withUTF8 { bytes in
                                snapshot.withRecords(ofSubjectBytes: UnsafeRawBufferPointer(bytes)) { set.decide(resolved, records: $0) }
                            }
                        case let .failure(failure):
                            decision = .deny(failure.reason)
                        }
                        if decision.isAllowed { allowed += 1 }
                    }
                    let finished = monotonicNanoseconds()
                    if finished >= end { break }
                    if !measuring { measuring = finished >= measureFrom }
                    if measuring {
                        _ = result.histogram.record(finished - started)
                        result.requests += 1
                        result.decisions += batch.count
                        result.allowed += allowed
                        result.denied += batch.count - allowed
                    }
                }
                results.withLock { $0.append(result) }
                group.leave()
            }.start()
        }
        group.wait()
        var total = LoadResult()
        for result in results.withLock({ $0 }) { total.merge(result) }
        total.seconds = duration
        return total
    }
}

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}
