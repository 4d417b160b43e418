/// One entry of tokenizer.json `added_tokens`.
public struct AddedToken: Equatable, Sendable {
    /// Equal when every field is, the content compared byte by byte (as tokenizers compares it).
    public static func == (a: AddedToken, b: AddedToken) -> Bool {
        a.content.utf8.elementsEqual(b.content.utf8) && a.singleWord == b.singleWord && a.lstrip == b.lstrip
            && a.rstrip == b.rstrip && a.normalized == b.normalized && a.special == b.special
    }

    public var content: String
    public var singleWord = false
    public var lstrip = false
    public var rstrip = false
    public var normalized = true
    public var special = false

    public init(content: String, singleWord: Bool = false, lstrip: Bool = false, rstrip: Bool = false,
                normalized: Bool = true, special: Bool = false) {
        self.content = content
        self.singleWord = singleWord
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.normalized = normalized
        self.special = special
    }
}

/// Added and special tokens, matched in the text before the model sees it (tokenizers'
/// AddedVocabulary). Tokens with `normalized: false` are found in the raw text; the stretches
/// between them are normalised one by one, and tokens with `normalized: true` are then found in
/// the normalised stretches, by their normalised content.
struct AddedVocabulary {
    private(set) var tokens: [UInt32: AddedToken] = [:]
    private(set) var ids: [ExactString: UInt32] = [:]
    /// The token string decoding uses: tokenizers gives a `normalized` token its normalised
    /// content (with Prepend("▁"), "<x>" decodes as "▁<x>", and then is not skipped as special).
    private(set) var decodeContents: [UInt32: String] = [:]
    private(set) var specialContents: Set<ExactString> = []
    private var rawMatcher = TokenMatcher()
    private var normalizedMatcher = TokenMatcher()

    // MARK: - Building

    /// Adds tokens in file order with tokenizers' id rules: a token already in the vocabulary keeps
    /// that id, a new one gets the next id after the model vocabulary and the added tokens. (The
    /// `id` written in tokenizer.json is only checked by tokenizers, never used.)
    init(_ entries: [AddedToken], model: BPEModel, normalizer: Normalizer?) {
        var special: [AddedToken] = [], plain: [AddedToken] = [] // matched special first, as tokenizers does
        for token in entries {
            let content = ExactString(token.content)
            if token.special && !token.content.isEmpty && !specialContents.contains(content) {
                special.append(token)
                specialContents.insert(content)
            }
            if token.content.isEmpty || tokens.values.contains(token) { continue }
            let id: UInt32
            if let existing = ids[content] ?? model.vocab[content] {
                id = existing
            } else if let maxId = ids.values.max() {
                let vocabSize = UInt32(model.vocab.count)
                id = (maxId >= vocabSize || vocabSize == 0) ? maxId + 1 : vocabSize
            } else {
                id = UInt32(model.vocab.count)
            }
            ids[content] = id
            tokens[id] = token
            if !specialContents.contains(content) { plain.append(token) }
        }
        for (id, token) in tokens {
            decodeContents[id] = token.normalized ? AddedVocabulary.normalize(token.content, normalizer).string : token.content
        }
        for token in special + plain {
            guard let id = ids[ExactString(token.content)], let current = tokens[id] else { continue }
            if token.normalized {
                normalizedMatcher.insert(AddedVocabulary.normalize(token.content, normalizer).scalars, id: id, token: current)
            } else {
                rawMatcher.insert(Array(token.content.unicodeScalars), id: id, token: current)
            }
        }
    }

    private static func normalize(_ content: String, _ normalizer: Normalizer?) -> NormalizedText {
        var text = NormalizedText(original: content)
        normalizer?.normalize(&text)
        return text
    }

    func isSpecial(_ content: String) -> Bool { specialContents.contains(ExactString(content)) }

    // MARK: - Splitting

    /// A stretch of text, or an added token already resolved to its id.
    enum Piece {
        case text(NormalizedText)
        case token(UInt32)
    }

    /// tokenizers' `extract_and_normalize`: raw-text tokens first, then normalise each remaining
    /// stretch and find the normalised tokens in it. Empty stretches are dropped.
    func extractAndNormalize(_ text: String, normalizer: Normalizer?) -> [Piece] {
        var pieces: [Piece] = []
        for piece in rawMatcher.split(NormalizedText(original: text)) {
            guard case var .text(stretch) = piece else { pieces.append(piece); continue }
            normalizer?.normalize(&stretch)
            pieces += normalizedMatcher.split(stretch)
        }
        return pieces
    }
}

// MARK: - Matching

/// Finds added tokens leftmost-longest (as tokenizers' Aho-Corasick with MatchKind::LeftmostLongest)
/// and applies their single_word / lstrip / rstrip rules as `AddedVocabulary::find_matches` does.
private struct TokenMatcher {
    private struct Node {
        var children: [UInt32: Int] = [:]
        var match: (id: UInt32, token: AddedToken)? = nil
    }

    private var nodes = [Node()]
    /// [65536 / 64] bit set of the first scalars of all patterns in the Basic Multilingual Plane:
    /// most positions of a text start no pattern, and this answers that without hashing.
    private var firstBMP = [UInt64](repeating: 0, count: 1024)

    mutating func insert(_ pattern: [Unicode.Scalar], id: UInt32, token: AddedToken) {
        guard let first = pattern.first else { return }
        if first.value < 0x10000 { firstBMP[Int(first.value >> 6)] |= 1 << UInt64(first.value & 63) }
        var node = 0
        for s in pattern {
            if let child = nodes[node].children[s.value] {
                node = child
            } else {
                nodes.append(Node())
                nodes[node].children[s.value] = nodes.count - 1
                node = nodes.count - 1
            }
        }
        if nodes[node].match == nil { nodes[node].match = (id, token) } // the first pattern wins a tie
    }

    /// Longest token starting at `start`.
    private func longestMatch(in scalars: [Unicode.Scalar], at start: Int) -> (end: Int, id: UInt32, token: AddedToken)? {
        let first = scalars[start].value
        if first < 0x10000 && firstBMP[Int(first >> 6)] & (1 << UInt64(first & 63)) == 0 { return nil }
        var node = 0
        var best: (Int, UInt32, AddedToken)? = nil
        var i = start
        while i < scalars.count, let child = nodes[node].children[scalars[i].value] {
            node = child
            i += 1
            if let m = nodes[node].match { best = (i, m.id, m.token) }
        }
        return best
    }

    func split(_ text: NormalizedText) -> [AddedVocabulary.Piece] {
        let scalars = text.scalars
        guard nodes.count > 1, !scalars.isEmpty else { return text.isEmpty ? [] : [.text(text)] }
        var pieces: [AddedVocabulary.Piece] = []
        var startOffset = 0 // end of the previous piece
        var searchFrom = 0  // the automaton resumes after the previous match (before any rstrip)
        while searchFrom < scalars.count {
            guard let m = longestMatch(in: scalars, at: searchFrom) else { searchFrom += 1; continue }
            var start = searchFrom, stop = m.end
            searchFrom = m.end
            if m.token.singleWord {
                let startSpace = start == 0 || !isWordCharacter(scalars[start - 1])
                let stopSpace = stop == scalars.count || !isWordCharacter(scalars[stop])
                if !startSpace || !stopSpace { continue }
            }
            if m.token.lstrip {
                var newStart = start
                while newStart > 0 && scalars[newStart - 1].properties.isWhitespace { newStart -= 1 }
                start = max(newStart, startOffset)
            }
            if m.token.rstrip {
                while stop < scalars.count && scalars[stop].properties.isWhitespace { stop += 1 }
            }
            if startOffset < start { pieces.append(.text(text.slice(startOffset..<start))) }
            pieces.append(.token(m.id))
            startOffset = stop
        }
        if startOffset < scalars.count { pieces.append(.text(text.slice(startOffset..<scalars.count))) }
        return pieces
    }
}

/// Rust regex `\w` (Unicode): Alphabetic, marks, decimal digits, connector punctuation, join controls.
private func isWordCharacter(_ s: Unicode.Scalar) -> Bool {
    let p = s.properties
    if p.isAlphabetic || p.isJoinControl { return true }
    switch p.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}
