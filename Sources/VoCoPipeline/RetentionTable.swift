import Foundation

// MARK: - The paper's table in miniature: accuracy per question type and retention

/// Markdown table of several reports over the same split. Retention = (x - lower) / (upper -
/// lower) on overall accuracy, where upper is the `full` report and lower the `text-only` one.
public enum RetentionTable {
    public static func markdown(_ reports: [EvaluationReport]) -> String {
        var types: [String] = []
        for report in reports {
            for type in report.accuracy.keys.sorted() where type != "overall" && !types.contains(type) { types.append(type) }
        }
        types.append("overall")
        let upper = reports.first { $0.mode == "full" }?.overall.percent
        let lower = reports.first { $0.mode == "text-only" }?.overall.percent
        var lines = ["| model | mode | rows/image | " + types.joined(separator: " | ") + " | retention |",
                     "|" + String(repeating: "---|", count: types.count + 4)]
        for r in reports {
            let rows: String
            switch r.mode {
            case "voco": rows = "\(r.k)"
            case "full": rows = "1+P"
            case "avgpool": rows = "1"
            default: rows = "0"
            }
            let cells = types.map { t in r.accuracy[t].map { String(format: "%.1f", $0.percent) } ?? "-" }
            var retention = "-"
            if let upper, let lower, upper != lower {
                retention = String(format: "%.1f%%", 100 * (r.overall.percent - lower) / (upper - lower))
            }
            let name = (r.model as NSString).lastPathComponent
            lines.append("| \(name) | \(r.mode) | \(rows) | " + cells.joined(separator: " | ") + " | \(retention) |")
        }
        return lines.joined(separator: "\n")
    }
}
