import ArgumentParser

// MARK: - Numbers a user gives, checked when the arguments are parsed

/// Checks of `voco` and `voco-bench` options: a number that cannot work is a usage error that
/// names the option, the value and why, never an overflow or an allocation that traps later.
public enum OptionCheck {
    /// Refuses `--option value` outside `range`.
    public static func require(_ option: String, _ value: Int, in range: ClosedRange<Int>, _ why: String = "") throws {
        guard !range.contains(value) else { return }
        let allowed = range.upperBound == .max ? "at least \(range.lowerBound)" : "between \(range.lowerBound) and \(range.upperBound)"
        throw ValidationError("--\(option) \(value): must be \(allowed)\(why.isEmpty ? "" : " (\(why))")")
    }
}

func require(_ option: String, _ value: Int, in range: ClosedRange<Int>, _ why: String = "") throws {
    try OptionCheck.require(option, value, in: range, why)
}
