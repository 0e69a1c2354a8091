import ArgumentParser
import ConsentModel
import ConsentSignals
import ConsentStore
import ConsentWire
import ConsentWorkload
import Foundation
import Glibc
import MallocInterposerSwift
import PolicyEngine
import SwiftProtobuf
import Synchronization

@main
struct Benchmarks: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consentd-benchmarks",
        abstract: "In-process benchmarks of the decision core and the consent index.",
        subcommands: [Decide.self, Load.self, Allocations.self, Signals.self],
        defaultSubcommand: Decide.self
    )
}

/// Decisions per second and allocations per decision on the shipped policies, over a synthetic
/// population held in the real in-memory index; plus the index's load time and memory per record.
struct Decide: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmark in-process decisions (index lookup + resolve + decide).")

    @Option(help: "Policy directory.") var policies = "../Policies"
    @Option(help: "Synthetic subjects (1–5 records each).") var subjects = 1_000_000
    @Option(help: "Seed of the population and request mix.") var seed: UInt64 = 1
    @Option(help: "Seconds to measure each phase.") var duration = 5.0
    @Option(help: "Threads for the multi-core phase.") var threads = 2
    @Option(help: "Decisions in the allocation-counting phase.") var allocationSample = 1_000_000

    func run() throws {
        let vocabulary = Vocabulary()
        guard let set = try PolicyDirectory.compile(policies, vocabulary: vocabulary).result.policySet else {
            throw ValidationError("policies in \(policies) do not compile; run consentctl policy lint")
        }
        let now = Timestamp(rfc3339: "2026-06-01T00:00:00Z")!
        let population = SyntheticPopulation(purposes: set.purposes.keys, dataCategories: set.dataCategories.keys, subjects: subjects, seed: seed, now: now)

        let rssBefore = residentBytes()
        let loadStart = DispatchTime.now()
        let snapshot = buildSnapshot(population, vocabulary)
        let loadSeconds = seconds(since: loadStart)
        releaseFreeMemory()
        let rssAfter = residentBytes()
        print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage())")
        print("policy set: \(set.rules.count) rules, revision \(set.revision)")
        print(String(format: "index: %d subjects, %d records, built in %.2f s from generated records", snapshot.subjectCount, snapshot.recordCount, loadSeconds))
        print(String(format: "index memory: %.1f B/record by buffer size, %.1f B/record by RSS growth",
                     Double(snapshot.residentBytes) / Double(snapshot.recordCount),
                     Double(rssAfter - rssBefore) / Double(snapshot.recordCount)))

        // The request mix: 90 % known subjects, every purpose and data category, several places, some GPC.
        var rng = SplitMix64(seed: seed &+ 1)
        let jurisdictions: [String?] = ["DE", "FR", "NL", "GB", "US-CA", "US-TX", "US-ME", "US-NY", "US-WY", "JP", nil]
        let requests: [DecisionRequest] = (0..<65_536).map { _ in
            let known = rng.next() % 10 != 0
            let subject = known ? SyntheticPopulation.subjectID(Int(rng.next() % UInt64(subjects))) : "unknown-\(rng.next() % 1_000_000)"
            return DecisionRequest(
                subject: subject,
                purpose: set.purposes.leaves[Int(rng.next() % UInt64(set.purposes.leaves.count))],
                dataCategory: set.dataCategories.leaves[Int(rng.next() % UInt64(set.dataCategories.leaves.count))],
                context: RequestContext(jurisdiction: jurisdictions[Int(rng.next() % UInt64(jurisdictions.count))], gpc: rng.next() % 10 == 0)
            )
        }

        // Index lookup alone.
        let lookups = measure(duration: duration / 2) { i in snapshot.records(of: requests[i & 65_535].subject).count }
        print(String(format: "index lookup: %.0f ns per subject lookup (1 thread)", 1e9 / lookups.rate))

        // The evaluator alone: records looked up beforehand.
        let prefetched = requests.map { snapshot.records(of: $0.subject) }
        let evaluator = measure(duration: duration / 2) { i in
            set.decide(requests[i & 65_535], consent: prefetched[i & 65_535], now: now).isAllowed ? 1 : 0
        }
        print(String(format: "decide (resolve + evaluate, records already looked up): %.2f M/s (%.0f ns each, 1 thread)", evaluator.rate / 1e6, 1e9 / evaluator.rate))

        // Single core: full decision path.
        var allowed = 0
        let single = measure(duration: duration) { i in
            let request = requests[i & 65_535]
            let decision = set.decide(request, consent: snapshot.records(of: request.subject), now: now)
            return decision.isAllowed ? 1 : 0
        }
        allowed = single.checksum
        print(String(format: "decisions (index lookup + resolve + evaluate), 1 thread: %.2f M/s (%.0f ns each); %.1f %% allowed", single.rate / 1e6, 1e9 / single.rate, 100 * Double(allowed) / Double(single.count)))

        // All threads.
        let rates = Mutex<[Double]>([])
        let group = DispatchGroup()
        for thread in 0..<threads {
            DispatchQueue.global().async(group: group) {
                let result = measure(duration: duration) { i in
                    let request = requests[(i &+ thread &* 7919) & 65_535]
                    return set.decide(request, consent: snapshot.records(of: request.subject), now: now).isAllowed ? 1 : 0
                }
                rates.withLock { $0.append(result.rate) }
            }
        }
        group.wait()
        let total = rates.withLock { $0.reduce(0, +) }
        print(String(format: "decisions, %d threads: %.2f M/s total, %.2f M/s per thread", threads, total / 1e6, total / 1e6 / Double(threads)))

        // Allocations per decision, counted by the preloaded malloc interposer.
        MallocInterposerSwift.initialize()
        MallocInterposerSwift.hook()
        let probe = [Int](repeating: 1, count: 1000)
        MallocInterposerSwift.unhook()
        let active = MallocInterposerSwift.getStatistics().mallocCount > 0 && probe.count == 1000
        if active {
            MallocInterposerSwift.initialize()
            MallocInterposerSwift.hook()
            var sink = 0
            for i in 0..<allocationSample {
                let request = requests[i & 65_535]
                sink &+= Int(set.decide(request, consent: snapshot.records(of: request.subject), now: now).reason.rawValue)
            }
            MallocInterposerSwift.unhook()
            let stats = MallocInterposerSwift.getStatistics()
            print(String(format: "allocations: %.4f mallocs per decision (%lld mallocs in %d decisions; checksum %d)", Double(stats.mallocCount) / Double(allocationSample), stats.mallocCount, allocationSample, sink % 997))
        } else {
            print("allocations: not measured — run through ./run.sh so the malloc interposer is preloaded")
        }
    }
}

/// Consent signal strings: decoding a typical TC string and a GPP string with a US national
/// section, and deciding with a TC string read from a request's bytes, in ns and allocations.
struct Signals: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmark decoding TCF and GPP strings and deciding with them.")

    @Option(help: "Policy directory.") var policies = "../Policies"
    @Option(help: "Seconds to measure each phase.") var duration = 2.0

    /// iabtcf-es's test suite: a v2 string whose vendor consents are a bitfield of several hundred
    /// vendors and whose legitimate interests are a range list.
    static let typicalTC = "CO4VGswO4VGswAfZCBDEAzCsAP_AAH_AAAigGUNf_X9fb2vj-_599_t0eY1f9_63t-wzjheMs-8NyZ-X_J4Wv2MyvB34JqQKGRgkunLBAQdtHGncTQgBwIlViTLMY02MjzNKJrJEilsbe2dYGH9vn8XT_ZKZ70-_v__7v3___33_5Ayhr_6_r7e18f3_Pvv9ujzGr_v_W9v2GccLxln3huTPy_5PC1-xmV4O_BNSBQyMEl05YICDto407iaEAOBEqsSZZjGmxkeZpRNZIkUtjb2zrAw_t8_i6f7JTPen39___d-___--__ICgKAOAAcAA4AFAAjgB6AEYALcGACAW0AtoJAHAAOAAcACgARwA9ACMAFuFABALaAW0GgDgAHAAOABQAI4AegBGAC3DgAgFtALaEQBwADgAHAAoAEcAPQAjABbiQAQC2gFtCoA4ABwADgAUACOAHoARgAtxYAIBbQC2hkAcAA4ABwAKABHAD0AIwAW40AEAtoBbQ6AOAAcAA4AFAAjgB6AEYALceACAW0AtohAHAAOAAcACgARwA9ACMAFuRABALaAW0SgDgAHAAOABQAI4AegBGAC3JgAgFtALaKQBwADgAHAAoAEcAPQAjABblQAQC2gFtA"
    /// iabgpp-es's test suite: a GPP string with a US national section (v1) and its GPC subsection.
    static let typicalGPP = "DBABLA~BVQqAAAAAgA.QA"

    func run() throws {
        guard let set = try PolicyDirectory.compile(policies, vocabulary: Vocabulary()).result.policySet else { throw ValidationError("policies do not compile") }
        print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage())")
        let tcBytes = Array(Self.typicalTC.utf8), gppBytes = Array(Self.typicalGPP.utf8)
        let tc = try tcBytes.withUnsafeBytes { try TCFString(parsing: $0) }
        var vendors = 0, interests = 0
        tc.vendorConsents.forEach { _ in vendors += 1 }
        tc.vendorLegitimateInterests.forEach { _ in interests += 1 }
        print("TC string: \(tcBytes.count) characters; vendor consents: \(vendors) vendors (\(tc.vendorConsents.isRangeEncoded ? "ranges" : "bitfield"), max id \(tc.vendorConsents.maxVendorId)); legitimate interests: \(interests) vendors (\(tc.vendorLegitimateInterests.isRangeEncoded ? "ranges" : "bitfield"))")
        let now = Timestamp(rfc3339: "2026-06-01T00:00:00Z")!
        let plain = DecisionRequest(subject: "s", purpose: "marketing.advertising.targeted", dataCategory: "user.behavior.browsing", context: RequestContext(jurisdiction: "DE"))
        var withTC = plain
        withTC.context.tcString = Self.typicalTC
        let records: ArraySlice<CompactRecord> = []

        let phases: [(String, (Int) -> Int)] = [
            ("decode TC string (parse + vendor 755 + purposes 1-4)", { i in
                tcBytes.withUnsafeBytes { raw in
                    guard let tc = try? TCFString(parsing: raw) else { return 0 }
                    return (tc.vendorConsents.contains(755 &+ (i & 1)) ? 1 : 0) &+ (tc.purposeConsent(1 &+ (i & 3)) ? 1 : 0)
                }
            }),
            ("decode GPP string with usnat (header + section + fields)", { _ in
                gppBytes.withUnsafeBytes { raw in
                    guard let gpp = try? GPPString(parsing: raw), let section = gpp.usSection(7) else { return 0 }
                    return Int(section.value(.saleOptOut) ?? 0) &+ Int(section.value(.targetedAdvertisingOptOut) ?? 0) &+ (section.gpc == true ? 1 : 0)
                }
            }),
            ("decide without signal strings", { _ in set.decide(plain, consent: records, now: now).isAllowed ? 1 : 0 }),
            ("decide with the TC string (read + resolve + evaluate)", { _ in set.decide(withTC, consent: records, now: now).isAllowed ? 1 : 0 }),
        ]
        MallocInterposerSwift.initialize()
        MallocInterposerSwift.hook()
        let probe = [Int](repeating: 1, count: 1000)
        MallocInterposerSwift.unhook()
        let counting = MallocInterposerSwift.getStatistics().mallocCount > 0 && probe.count == 1000
        for (name, body) in phases {
            let result = measure(duration: duration, body)
            var allocations = "allocations not counted (run through ./run.sh)"
            if counting {
                MallocInterposerSwift.initialize()
                MallocInterposerSwift.hook()
                var sink = 0
                for i in 0..<100_000 { sink &+= body(i) }
                MallocInterposerSwift.unhook()
                allocations = String(format: "%.3f mallocs/op", Double(MallocInterposerSwift.getStatistics().mallocCount) / 100_000)
                if sink == 42 { print("") }
            }
            print(String(format: "%-58@ %8.0f ns/op  %@  (checksum %d)", name as NSString, 1e9 / result.rate, allocations as NSString, result.checksum % 997))
        }
    }
}

struct Measurement {
    var count: Int
    var rate: Double
    var checksum: Int
}

/// Runs `body` in batches until `duration` seconds have passed (after a 10 % warm-up).
func measure(duration: Double, _ body: (Int) -> Int) -> Measurement {
    var checksum = 0
    var i = 0
    let warmEnd = DispatchTime.now().uptimeNanoseconds + UInt64(duration * 0.1 * 1e9)
    while DispatchTime.now().uptimeNanoseconds < warmEnd {
        for _ in 0..<4096 { checksum &+= body(i); i &+= 1 }
    }
    checksum = 0
    let start = DispatchTime.now().uptimeNanoseconds
    let end = start + UInt64(duration * 1e9)
    var count = 0
    var now = start
    while now < end {
        for _ in 0..<4096 { checksum &+= body(i); i &+= 1 }
        count += 4096
        now = DispatchTime.now().uptimeNanoseconds
    }
    return Measurement(count: count, rate: Double(count) / (Double(now - start) / 1e9), checksum: checksum)
}

func seconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

/// glibc's malloc_trim(0), looked up at run time (the Glibc module does not export it), so that
/// RSS growth counts what the index holds rather than freed build-time garbage.
func releaseFreeMemory() {
    typealias Trim = @convention(c) (Int) -> Int32
    let handle = dlopen(nil, RTLD_NOW)
    if let symbol = dlsym(handle, "malloc_trim") {
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }
}

func buildSnapshot(_ population: SyntheticPopulation, _ vocabulary: Vocabulary) -> ConsentSnapshot {
    var builder = ConsentSnapshotBuilder()
    for record in population {
        builder.add(subject: record.subject, record.compact(in: vocabulary))
    }
    return builder.build()
}

/// Start-up: load a store file into the in-memory index; time, memory per record, lookups.
struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmark loading a consent store file into the index (start-up).")

    @Option(help: "The store file (e.g. made with consentctl consent generate + import).") var store: String
    @Option(help: "Times to load (the best and the median are reported).") var repeats = 3

    func run() throws {
        print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage())")
        var times: [Double] = []
        var feed: ConsentFeed?
        for _ in 0..<repeats {
            feed = nil
            releaseFreeMemory()
            let rssBefore = residentBytes()
            let started = DispatchTime.now()
            let opened = try SQLiteConsentStore(path: store)
            let loaded = try ConsentFeed(store: opened, vocabulary: Vocabulary())
            times.append(seconds(since: started))
            releaseFreeMemory()
            let snapshot = loaded.index.snapshot()
            print(String(format: "loaded %d subjects, %d records in %.2f s; %.1f B/record by buffer size, %.1f B/record by RSS growth",
                         snapshot.subjectCount, snapshot.recordCount, times.last!,
                         Double(snapshot.residentBytes) / Double(max(1, snapshot.recordCount)),
                         Double(residentBytes() - rssBefore) / Double(max(1, snapshot.recordCount))))
            feed = loaded
        }
        times.sort()
        print(String(format: "load: best %.2f s, median %.2f s", times.first!, times[times.count / 2]))
        if let snapshot = feed?.index.snapshot(), snapshot.subjectCount > 0 {
            var rng = SplitMix64(seed: 7)
            let subjects = (0..<65_536).map { _ in SyntheticPopulation.subjectID(Int(rng.next() % UInt64(snapshot.subjectCount))) }
            let lookups = measure(duration: 2) { i in snapshot.records(of: subjects[i & 65_535]).count }
            print(String(format: "lookup: %.0f ns per subject (random over %d subjects, 1 thread)", 1e9 / lookups.rate, snapshot.subjectCount))
        }
    }
}

/// Allocations per operation on the hot path, counted by the malloc interposer, compared with
/// the checked-in thresholds (allocation counts are deterministic; wall-clock figures are not).
struct Allocations: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Count allocations per hot-path operation and check them against Thresholds/allocations.json.")

    @Option(help: "Policy directory.") var policies = "../Policies"
    @Option(help: "Thresholds file (operation → most mallocs per operation).") var thresholds = "Thresholds/allocations.json"
    @Flag(help: "Exit 1 when an operation allocates more than its threshold.") var check = false
    @Option(help: "Operations per measurement.") var iterations = 100_000

    func run() throws {
        MallocInterposerSwift.initialize()
        MallocInterposerSwift.hook()
        let probe = [Int](repeating: 1, count: 1000)
        MallocInterposerSwift.unhook()
        guard MallocInterposerSwift.getStatistics().mallocCount > 0, probe.count == 1000 else {
            print("the malloc interposer is not loaded: run through ./run.sh")
            throw ExitCode(2)
        }
        let vocabulary = Vocabulary()
        guard let set = try PolicyDirectory.compile(policies, vocabulary: vocabulary).result.policySet else { throw ValidationError("policies do not compile") }
        let now = Timestamp(rfc3339: "2026-06-01T00:00:00Z")!
        let population = SyntheticPopulation(purposes: set.purposes.keys, dataCategories: set.dataCategories.keys, subjects: 10_000, seed: 1, now: now)
        let snapshot = buildSnapshot(population, vocabulary)
        let request = DecisionRequest(subject: SyntheticPopulation.subjectID(42), purpose: "marketing.advertising.targeted", dataCategory: "user.behavior.browsing", context: RequestContext(jurisdiction: "DE"))
        let records = snapshot.records(of: request.subject)
        var wireRequest = Consentd_V1_Request()
        wireRequest.id = 7
        wireRequest.check = Consentd_V1_CheckRequest.with {
            $0.subjectID = request.subject
            $0.purpose = request.purpose
            $0.dataCategory = request.dataCategory
            $0.context.jurisdiction = "DE"
        }
        let encodedRequest: [UInt8] = try wireRequest.serializedBytes()
        // The answer the daemon's general path writes (AnswerWriter, as the fast path writes into its buffer).
        let encodedPolicy = EncodedPolicy(revision: set.revision, rules: [("eea-targeted-ads", "eea.yaml:9:5", ["pseudonymize"])])
        let answer = CheckAnswer(
            decision: UInt64(Consentd_V1_Decision.allow.rawValue), reason: UInt64(Consentd_V1_Reason.consentGranted.rawValue), ruleIndex: 0,
            withObligations: true, policy: encodedPolicy, consentSequence: 1234, record: nil, legalBasis: UInt64(Consentd_V1_LegalBasis.consent.rawValue)
        )
        var reused: [UInt8] = []
        reused.reserveCapacity(256)

        func count(_ name: String, _ body: () throws -> Int) rethrows -> (String, Double) {
            var sink = 0
            for _ in 0..<1000 { sink &+= try body() }  // warm caches and lazy initialisers
            MallocInterposerSwift.initialize()
            MallocInterposerSwift.hook()
            for _ in 0..<iterations { sink &+= try body() }
            MallocInterposerSwift.unhook()
            let perOperation = Double(MallocInterposerSwift.getStatistics().mallocCount) / Double(iterations)
            if sink == 42 { print("") }
            return (name, perOperation)
        }
        var withTC = request
        withTC.context.tcString = Signals.typicalTC
        let tcBytes = Array(Signals.typicalTC.utf8), gppBytes = Array(Signals.typicalGPP.utf8)
        let measured = try [
            count("evaluate") { Int(set.decide(request, consent: records, now: now).reason.rawValue) },
            count("evaluate_with_tc_string") { Int(set.decide(withTC, consent: records, now: now).reason.rawValue) },
            count("decode_tc_string") { tcBytes.withUnsafeBytes { (try? TCFString(parsing: $0))?.vendorConsents.contains(755) == true ? 1 : 0 } },
            count("decode_gpp_usnat") { gppBytes.withUnsafeBytes { Int((try? GPPString(parsing: $0))?.usSection(7)?.value(.saleOptOut) ?? 0) } },
            count("index_lookup") { snapshot.records(of: request.subject).count },
            count("frame_decode_check_request") {
                try encodedRequest.withUnsafeBytes { try Consentd_V1_Request(serializedBytes: RawBytes($0)).id == 7 ? 1 : 0 }
            },
            count("frame_encode_check_response") { AnswerWriter.checkFrame(id: 7, answer)?.count ?? 0 },
            count("frame_write_check_response_reused") {
                reused.removeAll(keepingCapacity: true)
                AnswerWriter.writeCheckFrame(id: 7, answer, into: &reused)
                return reused.count
            },
        ]
        let limits = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: thresholds)))) as? [String: Double] ?? [:]
        var failed = false
        for (name, value) in measured {
            let limit = limits[name]
            let verdict = limit.map { value <= $0 + 1e-9 ? "ok (threshold \($0))" : "OVER threshold \($0)" } ?? "no threshold"
            if let limit, value > limit + 1e-9 { failed = true }
            print(String(format: "%-30@ %8.3f mallocs/op  %@", name as NSString, value, verdict as NSString))
        }
        if check && failed { throw ExitCode(1) }
    }
}
