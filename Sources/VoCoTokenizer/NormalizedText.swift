/// A stretch of text on its way through normalisation and pre-tokenisation, as `tokenizers`'
/// NormalizedString, reduced to what changes token ids: the scalars, and for each scalar the UTF-8
/// offset in the original input it is aligned to. Metaspace's prepend_scheme "first" asks whether a
/// piece starts at original offset 0, so alignments are kept with `tokenizers`' rules: a prepended
/// scalar takes the alignment of the scalar it precedes; a replacement takes the alignment of the
/// last scalar it replaces.
struct NormalizedText {
    var scalars: [Unicode.Scalar] // [n]
    var origins: [Int]            // [n] original UTF-8 offset of each scalar

    init(scalars: [Unicode.Scalar], origins: [Int]) {
        self.scalars = scalars
        self.origins = origins
    }

    /// The original input: origins are the scalars' own UTF-8 offsets.
    init(original text: String) {
        scalars = Array(text.unicodeScalars)
        origins = []
        origins.reserveCapacity(scalars.count)
        var offset = 0
        for s in scalars {
            origins.append(offset)
            offset += UTF8.width(s)
        }
    }

    var isEmpty: Bool { scalars.isEmpty }
    var count: Int { scalars.count }

    /// Original offset of the first scalar (tokenizers' `offsets_original().0` of the piece).
    var originalStart: Int? { origins.first }

    var string: String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: scalars)
        return String(s)
    }

    func slice(_ range: Range<Int>) -> NormalizedText {
        NormalizedText(scalars: Array(scalars[range]), origins: Array(origins[range]))
    }

    // MARK: - Edits

    /// Prepend `prefix` unless the text is empty (tokenizers' `prepend`).
    mutating func prepend(_ prefix: [Unicode.Scalar]) {
        guard let first = origins.first, !prefix.isEmpty else { return }
        scalars.insert(contentsOf: prefix, at: 0)
        origins.insert(contentsOf: repeatElement(first, count: prefix.count), at: 0)
    }

    /// Replace every match (non-overlapping, left to right) by `content`.
    mutating func replace(_ matches: [Range<Int>], with content: [Unicode.Scalar]) {
        guard !matches.isEmpty else { return }
        var newScalars: [Unicode.Scalar] = []
        var newOrigins: [Int] = []
        newScalars.reserveCapacity(scalars.count)
        newOrigins.reserveCapacity(scalars.count)
        var last = 0
        for m in matches {
            newScalars.append(contentsOf: scalars[last..<m.lowerBound])
            newOrigins.append(contentsOf: origins[last..<m.lowerBound])
            // Inserted scalars share the alignment of the byte before the insertion point: the
            // last replaced scalar (or the scalar before an empty match; 0 at the very start).
            let align = m.upperBound > 0 ? origins[m.upperBound - 1] : 0
            newScalars.append(contentsOf: content)
            newOrigins.append(contentsOf: repeatElement(align, count: content.count))
            last = m.upperBound
        }
        newScalars.append(contentsOf: scalars[last...])
        newOrigins.append(contentsOf: origins[last...])
        scalars = newScalars
        origins = newOrigins
    }
}

// MARK: - Splitting

/// How a split keeps the matched delimiters (tokenizers' SplitDelimiterBehavior).
enum SplitBehavior: String {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

extension NormalizedText {
    /// Splits the text given its matches (which must be sorted and non-overlapping), following
    /// tokenizers' `NormalizedString::split`. Empty pieces are kept here; callers drop them.
    func split(matches: [Range<Int>], behavior: SplitBehavior, invert: Bool = false) -> [NormalizedText] {
        // Cover the whole text with (range, isMatch) as tokenizers' Pattern::find_matches does.
        var parts: [(range: Range<Int>, isMatch: Bool)] = []
        if scalars.isEmpty {
            parts = [(0..<0, false)]
        } else {
            var previous = 0
            for m in matches {
                if previous != m.lowerBound { parts.append((previous..<m.lowerBound, false)) }
                parts.append((m, true))
                previous = m.upperBound
            }
            if previous != scalars.count { parts.append((previous..<scalars.count, false)) }
        }
        if invert { parts = parts.map { ($0.range, !$0.isMatch) } }

        var kept: [(range: Range<Int>, remove: Bool)] = []
        switch behavior {
        case .isolated:
            kept = parts.map { ($0.range, false) }
        case .removed:
            kept = parts.map { ($0.range, $0.isMatch) }
        case .contiguous:
            var previousMatch = false
            for p in parts {
                if p.isMatch == previousMatch, let last = kept.last {
                    kept[kept.count - 1] = (last.range.lowerBound..<p.range.upperBound, false)
                } else {
                    kept.append((p.range, false))
                }
                previousMatch = p.isMatch
            }
        case .mergedWithPrevious:
            var previousMatch = false
            for p in parts {
                if p.isMatch && !previousMatch, let last = kept.last {
                    kept[kept.count - 1] = (last.range.lowerBound..<p.range.upperBound, false)
                } else {
                    kept.append((p.range, false))
                }
                previousMatch = p.isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for p in parts.reversed() {
                if p.isMatch && !previousMatch, let last = kept.last {
                    kept[kept.count - 1] = (p.range.lowerBound..<last.range.upperBound, false)
                } else {
                    kept.append((p.range, false))
                }
                previousMatch = p.isMatch
            }
            kept.reverse()
        }
        return kept.filter { !$0.remove }.map { slice($0.range) }
    }
}
