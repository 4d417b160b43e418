import Foundation
import VoCoPipeline
import VoCoStore

// MARK: - What `voco ingest` prints

/// JSON lines (progress objects, then the summary object) or, on a terminal, one live progress
/// line on stderr and a readable summary on stdout.
final class IngestOutput {
    let json: Bool
    private let live: Bool
    private var lastPrint = Date.distantPast
    private var lineShown = false
    /// Progress is printed at most this often (the last one always).
    static let interval = 0.5
    /// Issues listed in the readable summary, per kind (JSON lists all).
    static let listed = 20

    init(json: Bool) {
        self.json = json
        live = !json && isatty(STDERR_FILENO) != 0
    }

    func progress(_ p: IngestProgress) {
        let now = Date()
        guard p.done == p.total || now.timeIntervalSince(lastPrint) >= Self.interval else { return }
        lastPrint = now
        if json {
            var extra = Self.rates(p)
            extra["event"] = "progress"
            if let line = try? Self.jsonLine(p, adding: extra) { print(line); fflush(stdout) }
        } else if live {
            var line = "\(p.done)/\(p.total) files  \(String(format: "%.1f", p.imagesPerSecond)) images/s"
            if let left = p.secondsLeft, p.done < p.total { line += "  ETA \(Self.duration(left))" }
            line += "  compressed \(p.compressed)  cached \(p.alreadyCached)  skipped \(p.skipped)  failed \(p.failed)"
            FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
            lineShown = true
        }
    }

    func summary(_ s: IngestSummary) throws {
        if lineShown { FileHandle.standardError.write(Data("\n".utf8)) }
        if json {
            var extra = Self.rates(s.counts)
            extra["event"] = "summary"
            print(try Self.jsonLine(s, adding: extra))
            return
        }
        let c = s.counts
        print("\(s.stopped ? "stopped" : "done"): \(c.done) of \(c.total) files into collection '\(s.collection)' of \(s.store) in \(Self.duration(c.seconds)) (\(String(format: "%.1f", c.imagesPerSecond)) images/s)")
        print(table([
            ["  compressed", "\(c.compressed)"], ["  already cached", "\(c.alreadyCached)"],
            ["  skipped", "\(c.skipped)"], ["  failed", "\(c.failed)"],
            ["  joined the collection", "\(c.added)"], ["  bytes stored", byteCount(c.bytesStored)],
        ]))
        for (title, issues) in [("failed", s.failures), ("skipped", s.skippedFiles)] where !issues.isEmpty {
            print("\(title):")
            for issue in issues.prefix(Self.listed) { print("  \(issue.path): \(issue.reason)") }
            if issues.count > Self.listed { print("  ... and \(issues.count - Self.listed) more (--json lists them all)") }
        }
        if s.stopped { print("stopped by a signal: run the same command again to finish") }
    }

    // MARK: Helpers

    /// `value` as one line of JSON with `extra` keys added.
    static func jsonLine<T: Encodable>(_ value: T, adding extra: [String: Any]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var object = try JSONSerialization.jsonObject(with: encoder.encode(value)) as? [String: Any] ?? [:]
        for (key, v) in extra { object[key] = v }
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }

    static func rates(_ p: IngestProgress) -> [String: Any] {
        var extra: [String: Any] = ["imagesPerSecond": p.imagesPerSecond]
        if let left = p.secondsLeft, p.done < p.total { extra["secondsLeft"] = left }
        return extra
    }

    /// 75 -> "1m15s".
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        let s = Int(seconds.rounded())
        return s < 3600 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s / 3600)h\(String(format: "%02d", s / 60 % 60))m"
    }
}
