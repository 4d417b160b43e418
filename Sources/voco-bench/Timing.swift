import Foundation

/// Seconds per call of `body`, the best of `repeats` runs of `iterations` calls each.
func bestSeconds(repeats: Int = 5, iterations: Int = 1, _ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<iterations { try body() }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        best = min(best, elapsed / Double(iterations))
    }
    return best
}

func formatted(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

/// Columns: the first left-aligned, the others right-aligned.
func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    let widths = (0..<first.count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    for row in rows {
        print(row.enumerated().map { c, cell in c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
            : String(repeating: " ", count: widths[c] - cell.count) + cell }.joined(separator: "  "))
    }
}
