import Foundation
import Histogram

/// A bench run's figures, printed as text and written as JSON.
struct BenchReport: Encodable {
    struct Latency: Encodable {
        var p50: Double
        var p90: Double
        var p99: Double
        var p999: Double
        var p9999: Double
        var max: Double

        enum CodingKeys: String, CodingKey {
            case p50, p90, p99, p999 = "p99.9", p9999 = "p99.99", max
        }

        init(_ histogram: Histogram<UInt64>) {
            func us(_ value: UInt64) -> Double { (Double(value) / 10).rounded() / 100 }
            p50 = us(histogram.valueAtPercentile(50))
            p90 = us(histogram.valueAtPercentile(90))
            p99 = us(histogram.valueAtPercentile(99))
            p999 = us(histogram.valueAtPercentile(99.9))
            p9999 = us(histogram.valueAtPercentile(99.99))
            max = us(histogram.max)
        }

        var values: [Double] { [p50, p90, p99, p999, p9999, max] }
    }

    struct Figures: Encodable {
        var requestsPerSecond: Double
        var decisionsPerSecond: Double
        var latencyMicroseconds: Latency
        var requests: Int
        var allowed: Int
        var denied: Int
        var errors: [String: Int]
        /// Open loop: how late the generator sent each request compared with its intended time.
        var sendLagMicroseconds: Latency?
        /// Answers in each second of the measured run.
        var answersPerSecond: [Int]

        /// Whether the generator's own lateness is a material part of the latencies: its send lag
        /// at p99 above a quarter of the latency at p99, or above 1 ms.
        var generatorFellBehind: Bool {
            guard let lag = sendLagMicroseconds else { return false }
            return lag.p99 > 0.25 * latencyMicroseconds.p99 || lag.p99 > 1000
        }

        init(_ result: LoadResult, errorName: (Int) -> String) {
            requestsPerSecond = result.requestsPerSecond.rounded()
            decisionsPerSecond = result.decisionsPerSecond.rounded()
            latencyMicroseconds = Latency(result.histogram)
            requests = result.requests
            allowed = result.allowed
            denied = result.denied
            errors = Dictionary(uniqueKeysWithValues: result.errors.map { (errorName($0.key), $0.value) })
            sendLagMicroseconds = result.sendLag.map(Latency.init)
            answersPerSecond = result.perSecond
        }
    }

    var target: String
    var mode: String
    var connections: Int
    var depth: Int?
    var rate: Double?
    var batch: Int
    var mix: String
    var subjects: Int
    var warmupSeconds: Double
    var durationSeconds: Double
    var machine: [String: String]
    var floor: Figures?
    var daemon: Figures
    var throughputRatioToFloor: Double?
    var p99RatioToFloor: Double?

    var text: String {
        var lines: [String] = []
        let shape = mode == "open" ? "open loop at \(Int(rate ?? 0)) requests/s" : "closed loop, depth \(depth ?? 1)"
        lines.append("\(target): \(shape), \(connections) connection\(connections == 1 ? "" : "s"), mix \(mix)\(batch > 1 ? ", batches of \(batch)" : ""), \(subjects) subjects; \(String(format: "%.1f", durationSeconds)) s after \(String(format: "%.1f", warmupSeconds)) s warm-up")
        lines.append("machine: \(machine["cores"] ?? "?") cores, load average \(machine["load_average"] ?? "?") (client and daemon share these cores)")
        lines.append("")
        func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text : String(repeating: " ", count: width - text.count) + text }
        func row(_ name: String, _ values: [String]) -> String {
            name.padding(toLength: 15, withPad: " ", startingAt: 0) + values.map { pad($0, 12) }.joined()
        }
        lines.append(row("", ["req/s", "decisions/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "p99.99 µs", "max µs"]))
        func figures(_ name: String, _ f: Figures) -> String {
            row(name, [String(Int(f.requestsPerSecond)), name == "echo floor" ? "-" : String(Int(f.decisionsPerSecond))] + f.latencyMicroseconds.values.map { String(format: "%.1f", $0) })
        }
        if let floor { lines.append(figures("echo floor", floor)) }
        lines.append(figures(target == "in-process" ? "in-process" : "consentd", daemon))
        if let floor {
            let ratios = zip(daemon.latencyMicroseconds.values, floor.latencyMicroseconds.values).map { String(format: "%.2f×", $0 / max($1, 0.001)) }
            lines.append(row("ratio to floor", [String(format: "%.2f×", daemon.requestsPerSecond / max(floor.requestsPerSecond, 1)), "-"] + ratios))
        }
        // The generator's own error: how late it sent, beside what it measured.
        func lagRow(_ name: String, _ f: Figures) -> String? {
            f.sendLagMicroseconds.map { row(name, ["-", "-"] + $0.values.map { String(format: "%.1f", $0) }) }
        }
        if let floor, let line = lagRow("send lag, floor", floor) { lines.append(line) }
        if let line = lagRow("send lag", daemon) { lines.append(line) }
        for (name, f) in [("echo floor", floor), ("consentd", daemon)] {
            guard let f, f.generatorFellBehind, let lag = f.sendLagMicroseconds else { continue }
            lines.append(String(format: "warning: the generator itself fell behind during the %@ run (send lag p99 %.1f µs, max %.1f µs; latency p99 %.1f µs): "
                                + "those latencies include its own lateness. Lower --rate, use fewer --connections, or give it a core of its own.",
                                name, lag.p99, lag.max, f.latencyMicroseconds.p99))
        }
        lines.append("")
        let decided = daemon.allowed + daemon.denied
        if decided > 0 {
            lines.append(String(format: "allowed %.1f %%, denied %.1f %% of %d decisions", 100 * Double(daemon.allowed) / Double(decided), 100 * Double(daemon.denied) / Double(decided), decided))
        }
        lines.append(daemon.errors.isEmpty ? "errors: none" : "errors: " + daemon.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }
}

/// The percentile distribution in HdrHistogram's text format (values in microseconds), which
/// HdrHistogram's plotters read.
func hdrText(_ histogram: Histogram<UInt64>) -> String {
    var text = ""
    histogram.outputPercentileDistribution(to: &text, outputValueUnitScalingRatio: 1000)
    return text
}
