import Foundation

/// Metaspace's prepend_scheme: when a piece gets the replacement character in front.
enum PrependScheme: String {
    case always, first, never
}

/// tokenizer.json `pre_tokenizer`: splits each normalised stretch into the pieces BPE sees.
indirect enum PreTokenizer {
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme, split: Bool)
    case split(TextPattern, behavior: SplitBehavior, invert: Bool)
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case sequence([PreTokenizer])

    static let supported = ["Metaspace", "Split", "ByteLevel", "Sequence"]

    // MARK: - Loading

    init(_ field: JSONField) throws {
        let type = try field.componentType()
        switch type {
        case "Metaspace":
            let (replacement, scheme, split) = try PreTokenizer.metaspaceOptions(field)
            self = .metaspace(replacement: replacement, prependScheme: scheme, split: split)
        case "Split":
            let behaviorName = try field["behavior"].string()
            guard let behavior = SplitBehavior(rawValue: behaviorName) else {
                throw field["behavior"].fail("unknown split behavior '\(behaviorName)'")
            }
            self = .split(try TextPattern(field["pattern"]), behavior: behavior, invert: try field["invert"].bool(default: false))
        case "ByteLevel":
            self = .byteLevel(addPrefixSpace: try field["add_prefix_space"].bool(default: true),
                              useRegex: try field["use_regex"].bool(default: true))
        case "Sequence":
            self = .sequence(try field["pretokenizers"].array().map(PreTokenizer.init))
        default:
            throw TokenizerError.unsupportedComponent(path: field.path, kind: "pre-tokenizer", type: type, supported: PreTokenizer.supported)
        }
    }

    /// Metaspace fields as both the pre-tokenizer and the decoder read them. Older files give
    /// `add_prefix_space` instead of `prepend_scheme` (false means "never").
    static func metaspaceOptions(_ field: JSONField) throws -> (Unicode.Scalar, PrependScheme, Bool) {
        let replacement = try field["replacement"].scalar()
        var scheme = PrependScheme.always
        if let name = try field["prepend_scheme"].optionalString() {
            guard let s = PrependScheme(rawValue: name) else {
                throw field["prepend_scheme"].fail("expected \"always\", \"first\" or \"never\", found \"\(name)\"")
            }
            scheme = s
        }
        if try field["add_prefix_space"].bool(default: true) == false {
            if field.has("prepend_scheme"), scheme == .always {
                throw field["add_prefix_space"].fail("add_prefix_space false contradicts prepend_scheme \"always\"")
            }
            scheme = .never
        }
        return (replacement, scheme, try field["split"].bool(default: true))
    }

    // MARK: - Pre-tokenising

    /// Splits every piece; empty pieces are dropped, as tokenizers' PreTokenizedString does.
    func preTokenize(_ pieces: [NormalizedText]) -> [NormalizedText] {
        switch self {
        case let .sequence(steps):
            return steps.reduce(pieces) { $1.preTokenize($0) }
        default:
            return pieces.flatMap { splitPiece($0) }.filter { !$0.isEmpty }
        }
    }

    private func splitPiece(_ piece: NormalizedText) -> [NormalizedText] {
        var text = piece
        switch self {
        case let .metaspace(replacement, scheme, split):
            text.replace(occurrences(of: [" "], in: text.scalars), with: [replacement])
            let startsWithReplacement = text.scalars.first == replacement
            if !startsWithReplacement && (scheme == .always || (scheme == .first && text.originalStart == 0)) {
                text.prepend([replacement])
            }
            return split ? text.split(matches: occurrences(of: [replacement], in: text.scalars), behavior: .mergedWithNext) : [text]
        case let .split(pattern, behavior, invert):
            return text.split(matches: pattern.matches(in: text.scalars), behavior: behavior, invert: invert)
        case let .byteLevel(addPrefixSpace, useRegex):
            if addPrefixSpace && text.scalars.first != " " { text.prepend([" "]) }
            let parts = useRegex
                ? text.split(matches: TextPattern.regexMatches(ByteLevelAlphabet.splitRegex, in: text.scalars), behavior: .isolated)
                : [text]
            return parts.map(ByteLevelAlphabet.encode)
        case .sequence:
            return preTokenize([text])
        }
    }
}
