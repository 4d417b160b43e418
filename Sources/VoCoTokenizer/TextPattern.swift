import Foundation

/// The `pattern` of Replace and Split components: `{"String": "..."}` (a literal) or
/// `{"Regex": "..."}` (an Oniguruma expression in `tokenizers`, run here with ICU through
/// NSRegularExpression after translating the classes whose meaning differs).
enum TextPattern {
    case literal([Unicode.Scalar])
    case regex(NSRegularExpression)

    init(_ field: JSONField) throws {
        if field.has("String") {
            self = .literal(Array(try field["String"].string().unicodeScalars))
        } else if field.has("Regex") {
            let source = try field["Regex"].string()
            do {
                self = .regex(try NSRegularExpression(pattern: TextPattern.icuPattern(fromOniguruma: source)))
            } catch {
                throw TokenizerError.invalidRegex(path: field.path, field: field.field, pattern: source, reason: "\(error)")
            }
        } else {
            throw field.fail("expected {\"String\": ...} or {\"Regex\": ...}")
        }
    }

    /// Non-overlapping matches, left to right, as scalar index ranges. An empty literal matches nothing.
    func matches(in scalars: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case let .literal(needle):
            return occurrences(of: needle, in: scalars)
        case let .regex(regex):
            return TextPattern.regexMatches(regex, in: scalars)
        }
    }

    /// `scalars` with every match replaced by `content`.
    func replacing(in scalars: [Unicode.Scalar], with content: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        var last = 0
        for m in matches(in: scalars) {
            out += scalars[last..<m.lowerBound]
            out += content
            last = m.upperBound
        }
        out += scalars[last...]
        return out
    }

    // MARK: - Regex

    static func regexMatches(_ regex: NSRegularExpression, in scalars: [Unicode.Scalar]) -> [Range<Int>] {
        guard !scalars.isEmpty else { return [] }
        // [utf16Count + 1] scalar index of each UTF-16 offset
        var scalarIndex: [Int] = []
        scalarIndex.reserveCapacity(scalars.count + 1)
        var view = String.UnicodeScalarView()
        for (i, s) in scalars.enumerated() {
            view.append(s)
            scalarIndex.append(i)
            if s.value > 0xFFFF { scalarIndex.append(i) }
        }
        scalarIndex.append(scalars.count)
        let string = String(view)
        let ns = NSRange(location: 0, length: scalarIndex.count - 1)
        return regex.matches(in: string, options: [], range: ns).map {
            scalarIndex[$0.range.location]..<scalarIndex[$0.range.location + $0.range.length]
        }
    }

    /// Oniguruma (Ruby syntax, UTF-8) gives `\s`, `\w` and `\h` Unicode meanings that ICU spells
    /// differently: `\s` is White_Space (ICU leaves out U+000B and U+0085), `\w` is
    /// Letter|Mark|Number|Connector_Punctuation, `\h` is a hexadecimal digit. Everything else in the
    /// patterns tokenizer.json files use (classes, \p{..}, lookahead, possessive and lazy
    /// quantifiers, (?i:..)) reads the same in both.
    static func icuPattern(fromOniguruma pattern: String) -> String {
        var out = ""
        var chars = pattern.makeIterator()
        while let c = chars.next() {
            guard c == "\\", let next = chars.next() else { out.append(c); continue }
            switch next {
            case "s": out += "\\p{White_Space}"
            case "S": out += "\\P{White_Space}"
            case "w": out += "[\\p{L}\\p{M}\\p{N}\\p{Pc}]"
            case "W": out += "[^\\p{L}\\p{M}\\p{N}\\p{Pc}]"
            case "h": out += "[0-9a-fA-F]"
            case "H": out += "[^0-9a-fA-F]"
            default: out.append(c); out.append(next)
            }
        }
        return out
    }
}

/// Every occurrence of `needle` in `scalars` (non-overlapping, left to right), as index ranges.
func occurrences(of needle: [Unicode.Scalar], in scalars: [Unicode.Scalar]) -> [Range<Int>] {
    guard let head = needle.first, needle.count <= scalars.count else { return [] }
    var found: [Range<Int>] = []
    var i = 0
    let last = scalars.count - needle.count
    while i <= last {
        if scalars[i] == head && (needle.count == 1 || scalars[i..<(i + needle.count)].elementsEqual(needle)) {
            found.append(i..<(i + needle.count))
            i += needle.count
        } else {
            i += 1
        }
    }
    return found
}
