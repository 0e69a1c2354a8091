import Foundation
import Histogram

/// `bench --report FILE.html`: one self-contained page (inline SVG and CSS, a few lines of inline
/// script, nothing fetched) with the latency percentile curve of the daemon and the echo floor —
/// the HdrHistogram plot, percentile on a log scale of 1/(1 − p) — the answers per second over
/// the run, and the run's parameters. The script only measures what the browser drew (for the
/// test that renders the page); the page reads the same without it.
struct HTMLReport {
    struct Series {
        var name: String
        var color: String
        var histogram: Histogram<UInt64>
        var perSecond: [Int]
    }

    /// A curve over the run's seconds (a soak's samples).
    struct TimeSeries {
        var title: String
        var unit: String
        var color: String
        var points: [(seconds: Double, value: Double)]
        /// A limit to draw as a dashed line (a budget), if any.
        var limit: Double?
    }

    var title: String
    var parameters: [(String, String)]
    var series: [Series]
    var notes: [String] = []
    var timeSeries: [TimeSeries] = []

    /// Points of the percentile curve: (x = log10(1 / (1 − p)), latency µs), from p = 0 to the
    /// largest percentile the sample can show (1 − 1/count), every 0.05 decade.
    static func curve(_ histogram: Histogram<UInt64>) -> [(x: Double, microseconds: Double)] {
        let count = Double(histogram.totalCount)
        guard count > 0 else { return [] }
        let last = min(6, log10(max(count, 1)))
        var points: [(Double, Double)] = []
        var x = 0.0
        while x <= last + 1e-9 {
            let percentile = 100 * (1 - pow(10, -x))
            points.append((x, Double(histogram.valueAtPercentile(percentile)) / 1000))
            x += 0.05
        }
        points.append((last, Double(histogram.max) / 1000))
        return points
    }

    /// A round axis maximum at or above `value`: 1, 2 or 5 times a power of ten.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let power = pow(10, floor(log10(value)))
        for step in [1.0, 2, 5, 10] where step * power >= value { return step * power }
        return 10 * power
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func number(_ value: Double) -> String { String(format: "%.1f", value) }

    /// The percentile plot.
    func percentileSVG() -> String {
        let width = 880.0, height = 420.0, left = 70.0, right = 40.0, top = 20.0, bottom = 50.0
        let curves = series.map { (series: $0, points: Self.curve($0.histogram)) }
        let decades = max(1, Int(ceil(curves.flatMap { $0.points.map(\.x) }.max() ?? 1)))
        let yMax = Self.niceCeiling(curves.flatMap { $0.points.map(\.microseconds) }.max() ?? 1)
        func px(_ x: Double) -> Double { left + x / Double(decades) * (width - left - right) }
        func py(_ y: Double) -> Double { height - bottom - y / yMax * (height - top - bottom) }
        var svg = #"<svg id="percentiles" xmlns="http://www.w3.org/2000/svg" width="\#(Int(width))" height="\#(Int(height))" viewBox="0 0 \#(Int(width)) \#(Int(height))" role="img" aria-label="latency by percentile">"#
        svg += #"<rect x="\#(left)" y="\#(top)" width="\#(width - left - right)" height="\#(height - top - bottom)" fill="white" stroke="rgb(153,153,153)"/>"#
        for decade in 0...decades {
            let x = px(Double(decade))
            let label = decade == 0 ? "0%" : (decade == 1 ? "90%" : "99." + String(repeating: "9", count: decade - 2) + "%").replacingOccurrences(of: "99.%", with: "99%")
            svg += #"<line x1="\#(x)" y1="\#(top)" x2="\#(x)" y2="\#(height - bottom)" stroke="rgb(221,221,221)"/>"#
            svg += #"<text x="\#(x)" y="\#(height - bottom + 18)" text-anchor="middle" class="tick">\#(label)</text>"#
        }
        for step in 0...5 {
            let value = yMax * Double(step) / 5
            let y = py(value)
            svg += #"<line x1="\#(left)" y1="\#(y)" x2="\#(width - right)" y2="\#(y)" stroke="rgb(238,238,238)"/>"#
            svg += #"<text x="\#(left - 6)" y="\#(y + 4)" text-anchor="end" class="tick">\#(Self.number(value))</text>"#
        }
        svg += #"<text x="\#((left + width - right) / 2)" y="\#(height - 8)" text-anchor="middle" class="axis">percentile (log scale of 1/(1−p))</text>"#
        svg += #"<text x="16" y="\#((top + height - bottom) / 2)" text-anchor="middle" class="axis" transform="rotate(-90 16 \#((top + height - bottom) / 2))">latency µs</text>"#
        for (series, points) in curves where !points.isEmpty {
            let path = points.enumerated().map { index, point in (index == 0 ? "M" : "L") + Self.number(px(point.x)) + " " + Self.number(py(point.microseconds)) }.joined(separator: " ")
            svg += #"<path class="curve" data-series="\#(Self.escape(series.name))" d="\#(path)" fill="none" stroke="\#(series.color)" stroke-width="2.5"/>"#
        }
        return svg + "</svg>"
    }

    /// Answers per second over the run.
    func throughputSVG() -> String {
        let width = 880.0, height = 260.0, left = 70.0, right = 40.0, top = 20.0, bottom = 45.0
        let seconds = max(1, series.map(\.perSecond.count).max() ?? 1)
        let yMax = Self.niceCeiling(Double(series.flatMap(\.perSecond).max() ?? 1))
        func px(_ x: Double) -> Double { left + x / Double(seconds) * (width - left - right) }
        func py(_ y: Double) -> Double { height - bottom - y / yMax * (height - top - bottom) }
        var svg = #"<svg id="throughput" xmlns="http://www.w3.org/2000/svg" width="\#(Int(width))" height="\#(Int(height))" viewBox="0 0 \#(Int(width)) \#(Int(height))" role="img" aria-label="answers per second">"#
        svg += #"<rect x="\#(left)" y="\#(top)" width="\#(width - left - right)" height="\#(height - top - bottom)" fill="white" stroke="rgb(153,153,153)"/>"#
        for step in 0...4 {
            let value = yMax * Double(step) / 4
            svg += #"<line x1="\#(left)" y1="\#(py(value))" x2="\#(width - right)" y2="\#(py(value))" stroke="rgb(238,238,238)"/>"#
            svg += #"<text x="\#(left - 6)" y="\#(py(value) + 4)" text-anchor="end" class="tick">\#(Int(value))</text>"#
        }
        let every = max(1, seconds / 10)
        for second in stride(from: 0, through: seconds, by: every) {
            svg += #"<text x="\#(px(Double(second)))" y="\#(height - bottom + 18)" text-anchor="middle" class="tick">\#(second) s</text>"#
        }
        svg += #"<text x="\#((left + width - right) / 2)" y="\#(height - 6)" text-anchor="middle" class="axis">seconds into the measured run</text>"#
        for series in series where !series.perSecond.isEmpty {
            let points = series.perSecond.enumerated().map { Self.number(px(Double($0.offset) + 0.5)) + "," + Self.number(py(Double($0.element))) }.joined(separator: " ")
            svg += #"<polyline class="rate" data-series="\#(Self.escape(series.name))" points="\#(points)" fill="none" stroke="\#(series.color)" stroke-width="2"/>"#
        }
        return svg + "</svg>"
    }

    /// One sampled curve over the run.
    func timeSeriesSVG(_ curve: TimeSeries, index: Int) -> String {
        let width = 880.0, height = 200.0, left = 70.0, right = 40.0, top = 16.0, bottom = 36.0
        let seconds = max(1, curve.points.map(\.seconds).max() ?? 1)
        let yMax = Self.niceCeiling(max(curve.points.map(\.value).max() ?? 1, curve.limit ?? 0) * 1.05)
        func px(_ x: Double) -> Double { left + x / seconds * (width - left - right) }
        func py(_ y: Double) -> Double { height - bottom - y / yMax * (height - top - bottom) }
        var svg = #"<svg id="series-\#(index)" xmlns="http://www.w3.org/2000/svg" width="\#(Int(width))" height="\#(Int(height))" viewBox="0 0 \#(Int(width)) \#(Int(height))" role="img" aria-label="\#(Self.escape(curve.title))">"#
        svg += #"<rect x="\#(left)" y="\#(top)" width="\#(width - left - right)" height="\#(height - top - bottom)" fill="white" stroke="rgb(153,153,153)"/>"#
        for step in 0...4 {
            let value = yMax * Double(step) / 4
            svg += #"<line x1="\#(left)" y1="\#(py(value))" x2="\#(width - right)" y2="\#(py(value))" stroke="rgb(238,238,238)"/>"#
            svg += #"<text x="\#(left - 6)" y="\#(py(value) + 4)" text-anchor="end" class="tick">\#(Self.number(value))</text>"#
        }
        for step in 0...6 {
            let second = seconds * Double(step) / 6
            svg += #"<text x="\#(px(second))" y="\#(height - bottom + 16)" text-anchor="middle" class="tick">\#(Int(second)) s</text>"#
        }
        svg += #"<text x="\#(left + 8)" y="\#(top + 14)" class="axis">\#(Self.escape(curve.title)) (\#(Self.escape(curve.unit)))</text>"#
        if let limit = curve.limit {
            svg += #"<line x1="\#(left)" y1="\#(py(limit))" x2="\#(width - right)" y2="\#(py(limit))" stroke="rgb(120,120,120)" stroke-dasharray="6 4"/>"#
        }
        let points = curve.points.map { Self.number(px($0.seconds)) + "," + Self.number(py($0.value)) }.joined(separator: " ")
        svg += #"<polyline class="sample" points="\#(points)" fill="none" stroke="\#(curve.color)" stroke-width="2"/>"#
        return svg + "</svg>"
    }

    var html: String {
        let legend = series.map { #"<span class="key"><span class="swatch" style="background:\#($0.color)"></span>\#(Self.escape($0.name))</span>"# }.joined(separator: " ")
        let rows = parameters.map { "<tr><th>\(Self.escape($0.0))</th><td>\(Self.escape($0.1))</td></tr>" }.joined(separator: "\n")
        let noteList = notes.isEmpty ? "" : "<ul class=\"notes\">" + notes.map { "<li>\(Self.escape($0))</li>" }.joined() + "</ul>"
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(Self.escape(title))</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
            h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
            .tick { font-size: 11px; fill: #555; } .axis { font-size: 12px; fill: #333; }
            .key { margin-right: 18px; } .swatch { display: inline-block; width: 14px; height: 4px; margin: 0 6px 3px 0; vertical-align: middle; }
            table { border-collapse: collapse; } th { text-align: left; padding: 2px 14px 2px 0; font-weight: 600; } td { padding: 2px 0; }
            .notes { color: #8a4b00; }
            </style></head>
            <body data-rendered="no">
            <h1>\(Self.escape(title))</h1>
            <p>\(legend)</p>
            <h2>Latency by percentile</h2>
            \(percentileSVG())
            <h2>Answers per second</h2>
            \(throughputSVG())
            \(timeSeries.isEmpty ? "" : "<h2>The daemon over the run</h2>\n" + timeSeries.enumerated().map { timeSeriesSVG($0.element, index: $0.offset) }.joined(separator: "\n"))
            \(noteList)
            <h2>Run</h2>
            <table>
            \(rows)
            </table>
            <script>
            // Records what the browser drew (path lengths, sizes) for tests; the page needs none of it.
            for (const el of document.querySelectorAll('path.curve, polyline.rate, polyline.sample')) {
              const box = el.getBoundingClientRect();
              el.setAttribute('data-drawn', el.getTotalLength().toFixed(1) + ' ' + box.width.toFixed(1) + 'x' + box.height.toFixed(1));
            }
            document.body.dataset.rendered = 'yes';
            </script>
            </body></html>
            """
    }
}
