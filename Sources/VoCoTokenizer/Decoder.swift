/// tokenizer.json `decoder`: turns token strings back into text. Each step maps a list of token
/// strings to a new list (tokenizers' `decode_chain`); the result is joined.
indirect enum Decoder {
    case replace(TextPattern, content: [Unicode.Scalar])
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme)
    case byteLevel
    case sequence([Decoder])

    static let supported = ["Replace", "ByteFallback", "Fuse", "Strip", "Metaspace", "ByteLevel", "Sequence"]

    // MARK: - Loading

    init(_ field: JSONField) throws {
        let type = try field.componentType()
        switch type {
        case "Replace":
            self = .replace(try TextPattern(field["pattern"]), content: Array(try field["content"].string().unicodeScalars))
        case "ByteFallback":
            self = .byteFallback
        case "Fuse":
            self = .fuse
        case "Strip":
            let start = try field["start"].int(), stop = try field["stop"].int()
            guard start >= 0, stop >= 0 else { throw field.fail("Strip start and stop must not be negative") }
            self = .strip(content: try field["content"].scalar(), start: start, stop: stop)
        case "Metaspace":
            let (replacement, scheme, _) = try PreTokenizer.metaspaceOptions(field)
            self = .metaspace(replacement: replacement, prependScheme: scheme)
        case "ByteLevel":
            self = .byteLevel
        case "Sequence":
            self = .sequence(try field["decoders"].array().map(Decoder.init))
        default:
            throw TokenizerError.unsupportedComponent(path: field.path, kind: "decoder", type: type, supported: Decoder.supported)
        }
    }

    /// Whether the chain turns "<0xXX>" tokens into bytes (the streaming decoder waits for a run
    /// of them to end).
    var hasByteFallback: Bool {
        switch self {
        case .byteFallback: return true
        case let .sequence(steps): return steps.contains { $0.hasByteFallback }
        default: return false
        }
    }

    // MARK: - Decoding

    func decode(_ tokens: [String]) -> String { decodeChain(tokens).joined() }

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case let .replace(pattern, content):
            return tokens.map { token in
                if case let .literal(needle) = pattern, let head = needle.first, !token.unicodeScalars.contains(head) {
                    return token // the common case, without building arrays
                }
                var view = String.UnicodeScalarView()
                view.append(contentsOf: pattern.replacing(in: Array(token.unicodeScalars), with: content))
                return String(view)
            }
        case .byteFallback:
            return Decoder.byteFallback(tokens)
        case .fuse:
            return [tokens.joined()]
        case let .strip(content, start, stop):
            return tokens.map { Decoder.strip($0, content: content, start: start, stop: stop) }
        case let .metaspace(replacement, scheme):
            // The first token loses every replacement character (not only a leading one), as in tokenizers.
            return tokens.enumerated().map { i, token in
                var view = String.UnicodeScalarView()
                for s in token.unicodeScalars {
                    if s == replacement {
                        if i == 0 && scheme != .never { continue }
                        view.append(" ")
                    } else {
                        view.append(s)
                    }
                }
                return String(view)
            }
        case .byteLevel:
            return [ByteLevelAlphabet.decode(tokens)]
        case let .sequence(steps):
            return steps.reduce(tokens) { $1.decodeChain($0) }
        }
    }

    /// Runs of "<0xXX>" tokens become their bytes as UTF-8; a run that is not valid UTF-8 becomes
    /// one U+FFFD per byte.
    private static func byteFallback(_ tokens: [String]) -> [String] {
        var out: [String] = []
        var run: [UInt8] = []
        func flush() {
            guard !run.isEmpty else { return }
            if let s = String(validating: run, as: UTF8.self) {
                out.append(s)
            } else {
                out += repeatElement("\u{FFFD}", count: run.count)
            }
            run.removeAll()
        }
        for token in tokens {
            if let byte = byteFallbackValue(token) {
                run.append(byte)
            } else {
                flush()
                out.append(token)
            }
        }
        flush()
        return out
    }

    /// The byte of a "<0xXX>" token. Like tokenizers (`u8::from_str_radix` on the two characters),
    /// lower-case digits and a "+" in place of the first digit are accepted.
    static func byteFallbackValue(_ token: String) -> UInt8? {
        let u = token.utf8
        guard u.count == 6 else { return nil }
        let b = Array(u)
        guard b[0] == UInt8(ascii: "<"), b[1] == UInt8(ascii: "0"), b[2] == UInt8(ascii: "x"), b[5] == UInt8(ascii: ">") else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        if b[3] == UInt8(ascii: "+") { return hex(b[4]) }
        guard let high = hex(b[3]), let low = hex(b[4]) else { return nil }
        return high << 4 | low
    }

    /// Removes up to `start` leading and `stop` trailing `content` characters. (tokenizers panics
    /// when the cuts cross; here they are clamped.)
    private static func strip(_ token: String, content: Unicode.Scalar, start: Int, stop: Int) -> String {
        let scalars = token.unicodeScalars
        var lower = scalars.startIndex, upper = scalars.endIndex
        var cut = 0
        while cut < start, lower < upper, scalars[lower] == content { lower = scalars.index(after: lower); cut += 1 }
        cut = 0
        while cut < stop, lower < upper, scalars[scalars.index(before: upper)] == content { upper = scalars.index(before: upper); cut += 1 }
        if lower == scalars.startIndex && upper == scalars.endIndex { return token }
        return String(scalars[lower..<upper])
    }
}
