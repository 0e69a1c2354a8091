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

        init(_ result: LoadResult, errorName: (Int) -> String) {
            requestsPerSecond = result.requestsPerSecond.rounded()
            decisionsPerSecond = result.decisionsPerSecond.rounded()
            latencyMicroseconds = Latency(result.histogram)
            requests = result.requests
            allowed = result.allowed
            denied = result.denied
            errors = Dictionary(uniqueKeysWithValues: result.errors.map { (errorName($0.key), $0.value) })
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
