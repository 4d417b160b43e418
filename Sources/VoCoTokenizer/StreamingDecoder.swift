/// Incremental decoding for generation: `push` ids one at a time and get text chunks; `finish`
/// returns what is still held back. The chunks concatenated equal `decode(allIds)`, and no chunk
/// ends inside a character that byte-fallback tokens are still spelling out.
///
/// It keeps a short window of ids: the ids of the last emitted chunk (context, so decoders that
/// treat the first token specially, such as Metaspace or Strip, see the same neighbours as in a
/// full decode) and the ids not yet emitted. New text is the window's decode minus the context's.
/// Text is held back while the last id is a byte-fallback token (the run may still turn into a
/// different character, or into U+FFFD for every byte if it proves invalid) and while the text
/// ends in U+FFFD (a ByteLevel decoder's incomplete character).
public struct StreamingDecoder {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    private var window: [Int] = []  // [context..., pending...]
    private var contextCount = 0
    private var contextText = ""    // decode(window[..<contextCount])

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the text that became final ("" when there is none yet).
    public mutating func push(_ id: Int) -> String {
        window.append(id)
        // A byte token may be continued by the next one. An id that decodes to nothing (a skipped
        // special token, an id outside the vocabulary) does not end a byte run either.
        if tokenizer.isByteToken(id) || tokenizer.idToToken(id) == nil || (skipSpecialTokens && tokenizer.isSpecial(id)) {
            return ""
        }
        return emit(final: false)
    }

    /// Adds several ids; returns the text that became final.
    public mutating func push<S: Sequence>(contentsOf ids: S) -> String where S.Element == Int {
        ids.map { push($0) }.joined()
    }

    /// Returns everything still held back (an unfinished byte run, a trailing U+FFFD) and resets.
    public mutating func finish() -> String {
        let rest = emit(final: true)
        window.removeAll()
        contextCount = 0
        contextText = ""
        return rest
    }

    private mutating func emit(final: Bool) -> String {
        let text = tokenizer.decode(window, skipSpecialTokens: skipSpecialTokens)
        // Byte-wise comparisons: String's own hasPrefix compares whole characters.
        guard text.utf8.count > contextText.utf8.count, final || text.unicodeScalars.last != "\u{FFFD}" else { return "" }
        let fresh: String
        if text.utf8.starts(with: contextText.utf8) {
            fresh = String(decoding: text.utf8.dropFirst(contextText.utf8.count), as: UTF8.self)
        } else {
            // Not reached with the decoders tokenizer.json files use: their output for a window
            // always starts with the output for its first ids. Emit past the common prefix.
            let common = zip(text.unicodeScalars, contextText.unicodeScalars).prefix { $0 == $1 }.count
            var view = String.UnicodeScalarView()
            view.append(contentsOf: text.unicodeScalars.dropFirst(common))
            fresh = String(view)
        }
        // The ids just emitted become the context of the next window.
        window.removeFirst(contextCount)
        contextCount = window.count
        contextText = tokenizer.decode(window, skipSpecialTokens: skipSpecialTokens)
        return fresh
    }
}
