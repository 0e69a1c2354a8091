import Foundation
import Testing

/// A headless browser for rendering `bench --report` pages: `CONSENTD_TEST_BROWSER`, or Debian's
/// chromium where it is installed.
enum HeadlessBrowser {
    static let path: String? = {
        if let named = ProcessInfo.processInfo.environment["CONSENTD_TEST_BROWSER"], !named.isEmpty { return named }
        return ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }()
    static let skipReason = "no headless browser: install Debian's chromium (apt-get install chromium) or set CONSENTD_TEST_BROWSER to one; the bench --report rendering test is skipped"

    /// Runs the browser headless on `page` with `arguments`; returns its standard output.
    static func run(_ arguments: [String], page: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path!)
        // As root (CI) Chromium needs --no-sandbox; no GPU, no network is used by the page.
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--user-data-dir=\(NSTemporaryDirectory())chromium-\(UUID().uuidString)"]
            + arguments + ["file://\(page)"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

/// `bench --report FILE.html`, rendered and looked at in a real headless browser: the page loads
/// with nothing from the network, the browser lays out both percentile curves across the plot,
/// and a screenshot has the daemon's curve drawn in its colour.
@Suite(.enabled(if: HeadlessBrowser.path != nil, Comment(rawValue: HeadlessBrowser.skipReason)))
struct ReportRenderingTests {
    @Test func theReportsCurvesAreDrawnByABrowser() throws {
        let daemon = try DaemonProcess()
        let page = daemon.directory.path("report.html")
        let output = try daemon.ctl(["bench", "--duration", "1.5", "--warmup", "0.2", "--rate", "2000", "--subjects", "100", "--report", page])
        #expect(output.status == 0, "\(output.stderr)")
        let html = try String(contentsOfFile: page, encoding: .utf8)
        // Self-contained: nothing to fetch.
        for reference in ["src=\"http", "href=\"http", "url(http", "<link", "@import"] { #expect(!html.contains(reference), "\(reference)") }
        #expect(html.contains("consentctl bench --duration 1.5"))
        // Laid out by the browser: both curves span most of the plot's width.
        let dom = try HeadlessBrowser.run(["--dump-dom"], page: page)
        #expect(dom.contains("data-rendered=\"yes\""), "the page's script did not run: \(dom.prefix(300))")
        for series in ["consentd", "echo floor"] {
            let pattern = try Regex("class=\"curve\" data-series=\"\(series)\"[^>]*data-drawn=\"([0-9.]+) ([0-9.]+)x([0-9.]+)\"")
            let match = try #require(dom.firstMatch(of: pattern), "no drawn \(series) curve in the rendered page")
            let length = Double(match.output[1].substring ?? "") ?? 0, width = Double(match.output[2].substring ?? "") ?? 0
            #expect(length > 500 && width > 400, "\(series): drawn length \(length), width \(width)")
        }
        // Seen: a screenshot holds pixels of the daemon curve's colour (#d62728).
        let png = daemon.directory.path("report.png")
        _ = try HeadlessBrowser.run(["--window-size=940,1100", "--screenshot=\(png)"], page: page)
        let counter = Process()
        counter.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        counter.arguments = ["python3", CLI.repository.appendingPathComponent("scripts/png-colour-count.py").path, png, "d62728"]
        let counted = Pipe()
        counter.standardOutput = counted
        try counter.run()
        let text = String(decoding: counted.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        counter.waitUntilExit()
        let pixels = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(pixels > 1_000, "\(pixels) pixels of the daemon curve's colour in the screenshot (\(text))")
        #expect(daemon.terminate() == 0)
    }
}
