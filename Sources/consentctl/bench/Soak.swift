import ConsentClient
import Foundation

/// `bench --soak DURATION`: a steady open-loop mixed load (checks, batches, ListUses and consent
/// writes) for a long run, sampling the daemon every few seconds — its resident memory, open
/// files, the receipts directory's disk use, the answers per second and the store's records —
/// and failing when a bound breaks: memory growth beyond what the new records explain, open
/// files creeping up, receipts beyond their budget, any request answered with an error (a
/// consent write that failed among them).
struct SoakSample: Encodable {
    var seconds: Double
    var rssBytes: Int
    var openFiles: Int
    var receiptBytes: Int?
    var answersPerSecond: Double
    var records: UInt64
}

struct SoakMonitor {
    let pid: Int32
    let receipts: String?
    let status: ConsentClient

    /// Resident memory (VmRSS) of the daemon, bytes.
    func rss() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    /// Open file descriptors of the daemon.
    func openFiles() -> Int { ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count }

    /// Bytes of everything in the receipts directory (files, ledger, policy archive).
    func receiptBytes() -> Int? {
        guard let receipts, let walker = FileManager.default.enumerator(atPath: receipts) else { return nil }
        var total = 0
        while let name = walker.nextObject() as? String {
            var info = stat()
            if lstat(receipts + "/" + name, &info) == 0, info.st_mode & S_IFMT == S_IFREG { total += Int(info.st_size) }
        }
        return total
    }

    func sample(at seconds: Double, answersPerSecond: Double) -> SoakSample {
        let records = (try? status.status().records) ?? 0
        return SoakSample(seconds: seconds, rssBytes: rss(), openFiles: openFiles(), receiptBytes: receiptBytes(), answersPerSecond: answersPerSecond, records: records)
    }
}

/// The bounds a soak must keep, and what it found.
struct SoakVerdict: Encodable {
    var baselineSeconds: Double
    var rssGrowthBytes: Int
    var recordsAdded: Int
    var bytesPerNewRecord: Double?
    var allowedGrowthBytes: Int
    var openFilesGrowth: Int
    var largestReceiptBytes: Int?
    var receiptBudget: Int?
    var errors: Int
    var problems: [String]

    /// - Parameters:
    ///   - samples: every sample, in order.
    ///   - bytesPerRecord: the memory a new consent record may explain.
    ///   - slack: growth allowed whatever the records (allocator, queues filling to their bound).
    init(samples: [SoakSample], baselineAfter warmup: Double, bytesPerRecord: Int, slack: Int, receiptBudget: Int?, errors: Int) {
        let baseline = samples.first { $0.seconds >= warmup } ?? samples.first!
        let last = samples.last!
        baselineSeconds = baseline.seconds
        // The end's memory is the least of the last tenth of the samples (at least three): a
        // receipts file being compressed holds it (~2× the file) for a second, which a single
        // sample may catch; a leak shows in every sample.
        let tail = samples.suffix(max(3, samples.count / 10)).filter { $0.seconds > baseline.seconds }
        let endRSS = tail.map(\.rssBytes).min() ?? last.rssBytes
        rssGrowthBytes = endRSS - baseline.rssBytes
        recordsAdded = Int(last.records) - Int(baseline.records)
        bytesPerNewRecord = recordsAdded > 0 ? Double(rssGrowthBytes) / Double(recordsAdded) : nil
        allowedGrowthBytes = max(0, recordsAdded) * bytesPerRecord + slack
        openFilesGrowth = last.openFiles - baseline.openFiles
        largestReceiptBytes = samples.compactMap(\.receiptBytes).max()
        self.receiptBudget = receiptBudget
        self.errors = errors
        problems = []
        if rssGrowthBytes > allowedGrowthBytes {
            problems.append("resident memory grew \(rssGrowthBytes >> 20) MiB after \(Int(baseline.seconds)) s, more than \(recordsAdded) new records explain at \(bytesPerRecord) bytes each plus \(slack >> 20) MiB (\(allowedGrowthBytes >> 20) MiB)")
        }
        if openFilesGrowth > 16 { problems.append("open files grew by \(openFilesGrowth) (from \(baseline.openFiles) to \(last.openFiles))") }
        if let receiptBudget, let largest = largestReceiptBytes, largest > receiptBudget {
            problems.append("the receipts directory reached \(largest) bytes, beyond its budget of \(receiptBudget)")
        }
        if errors > 0 { problems.append("\(errors) requests were answered with an error (consent writes among them fail the soak)") }
    }
}

enum SoakText {
    /// One curve as a line of block characters, scaled to its own range.
    static func sparkline(_ all: [Double], width: Int = 60) -> String {
        // At most `width` characters: each the largest value of its share of the samples.
        let values = all.count <= width ? all : (0..<width).map { bucket in
            all[(bucket * all.count / width)..<max(bucket * all.count / width + 1, (bucket + 1) * all.count / width)].max()!
        }
        guard let low = values.min(), let high = values.max() else { return "" }
        let blocks = Array("▁▂▃▄▅▆▇█")
        return String(values.map { high > low ? blocks[min(7, Int(($0 - low) / (high - low) * 7.999))] : blocks[0] })
    }

    static func table(_ samples: [SoakSample]) -> String {
        var lines = ["  seconds    RSS MiB   open files   receipts MiB   answers/s    records"]
        let step = max(1, samples.count / 40)
        for (index, sample) in samples.enumerated() where index % step == 0 || index == samples.count - 1 {
            lines.append(String(format: "%9.0f %10.1f %12d %14@ %11.0f %10llu", sample.seconds, Double(sample.rssBytes) / 1_048_576, sample.openFiles,
                                sample.receiptBytes.map { String(format: "%.1f", Double($0) / 1_048_576) } ?? "-", sample.answersPerSecond, sample.records))
        }
        return lines.joined(separator: "\n")
    }
}

/// "90", "90s", "30m", "2h" → seconds.
func parseDuration(_ text: String) -> Double? {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
    if let unit = text.last, let scale = units[unit] { return Double(text.dropLast()).map { $0 * scale } }
    return Double(text)
}
