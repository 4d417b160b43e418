import Foundation

/// A Hugging Face `tokenizer.json` (LLaMA-style BPE) that encodes and decodes exactly as the
/// `tokenizers` library does (checked against tokenizers 0.23.3 by the fixture tests).
///
/// Encoding: added/special tokens are found in the raw text; each stretch between them is
/// normalised, searched again for normalised added tokens, pre-tokenised and run through BPE;
/// the post-processor adds BOS/EOS when `addSpecialTokens` is true. Anything in the file we do
/// not implement is refused at load with an error naming it.
public final class Tokenizer: @unchecked Sendable {
    /// The tokenizer.json this was loaded from (used in messages).
    public let path: String
    public let config: TokenizerConfig
    let model: BPEModel
    let added: AddedVocabulary
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let postProcessor: PostProcessor?
    let decoder: Decoder?

    // MARK: - Loading

    /// Loads `tokenizer.json` and, when present, `tokenizer_config.json` from a directory.
    public convenience init(directory: String) throws {
        let jsonPath = (directory as NSString).appendingPathComponent("tokenizer.json")
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        let json = try Tokenizer.read(jsonPath)
        let config = FileManager.default.fileExists(atPath: configPath)
            ? try TokenizerConfig(data: try Tokenizer.read(configPath), path: configPath) : TokenizerConfig()
        try self.init(tokenizerJSON: json, config: config, path: jsonPath)
    }

    public init(tokenizerJSON data: Data, config: TokenizerConfig = TokenizerConfig(), path: String = "tokenizer.json") throws {
        self.path = path
        self.config = config
        let root = JSONField(try JSONValue.parse(data, path: path), path: path)
        guard case .object = root.value else { throw root.expected("an object") }
        if let version = try root["version"].optionalString(), version != "1.0" {
            throw TokenizerError.unsupportedOption(path: path, field: "version", value: "\"\(version)\" (only \"1.0\" exists)")
        }
        for option in ["truncation", "padding"] where !root[option].isNull {
            throw TokenizerError.unsupportedOption(path: path, field: option, value: "\(root[option].value.kindName) (set it to null; truncate or pad the ids yourself)")
        }
        guard root.has("model") else { throw root.fail("no 'model'") }
        model = try BPEModel(root["model"])
        normalizer = root["normalizer"].isNull ? nil : try Normalizer(root["normalizer"])
        preTokenizer = root["pre_tokenizer"].isNull ? nil : try PreTokenizer(root["pre_tokenizer"])
        postProcessor = root["post_processor"].isNull ? nil : try PostProcessor(root["post_processor"])
        decoder = root["decoder"].isNull ? nil : try Decoder(root["decoder"])
        let entries = root["added_tokens"].isNull ? [] : try root["added_tokens"].array().map(Tokenizer.addedToken)
        added = AddedVocabulary(entries, model: model, normalizer: normalizer)
    }

    private static func read(_ path: String) throws -> Data {
        // A FIFO would block the read forever: regular files only.
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
            throw TokenizerError.cannotRead(path: path, reason: "not a regular file")
        }
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TokenizerError.cannotRead(path: path, reason: error.localizedDescription)
        }
    }

    private static func addedToken(_ field: JSONField) throws -> AddedToken {
        let special = try field["special"].bool(default: false)
        return AddedToken(content: try field["content"].string(),
                          singleWord: try field["single_word"].bool(default: false),
                          lstrip: try field["lstrip"].bool(default: false),
                          rstrip: try field["rstrip"].bool(default: false),
                          normalized: try field["normalized"].bool(default: !special),
                          special: special)
    }

    // MARK: - Vocabulary

    /// The id of a token (added tokens first, then the model vocabulary).
    public func tokenToId(_ token: String) -> Int? {
        let key = ExactString(token)
        return (added.ids[key] ?? model.vocab[key]).map(Int.init)
    }

    /// The token string of an id as decoding sees it, or nil for an id outside the vocabulary.
    /// (For an added token with `normalized: true` that is its normalised content, as in tokenizers.)
    public func idToToken(_ id: Int) -> String? {
        guard let key = UInt32(exactly: id) else { return nil }
        return added.decodeContents[key] ?? model.idToToken[key]
    }

    /// Whether `decode(skipSpecialTokens: true)` leaves this id out: its token string is the
    /// content of a special added token.
    public func isSpecial(_ id: Int) -> Bool {
        idToToken(id).map(added.isSpecial) ?? false
    }

    /// Added tokens by id, as loaded.
    public var addedTokens: [Int: AddedToken] {
        Dictionary(uniqueKeysWithValues: added.tokens.map { (Int($0.key), $0.value) })
    }

    /// One more than the largest id (the embedding rows a model needs).
    public var vocabularySize: Int {
        Int(max(model.idToToken.keys.max() ?? 0, added.tokens.keys.max() ?? 0)) + 1
    }

    public var bosTokenId: Int? { config.bosToken.flatMap(tokenToId) }
    public var eosTokenId: Int? { config.eosToken.flatMap(tokenToId) }

    // MARK: - Encoding

    /// Token ids of `text`; `addSpecialTokens` applies the post-processor (BOS for LLaMA).
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [UInt32] = []
        for piece in added.extractAndNormalize(text, normalizer: normalizer) {
            switch piece {
            case let .token(id):
                ids.append(id)
            case let .text(stretch):
                let words = preTokenizer?.preTokenize([stretch]) ?? [stretch]
                for word in words { model.tokenize(word.scalars[...], into: &ids) }
            }
        }
        if addSpecialTokens, let postProcessor { ids = postProcessor.process(ids) }
        return ids.map(Int.init)
    }

    // MARK: - Decoding

    /// Text of `ids`. Ids outside the vocabulary are left out, as tokenizers does.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        let tokens = ids.compactMap { id -> String? in
            guard let token = idToToken(id) else { return nil }  // ids outside the vocabulary
            return skipSpecialTokens && added.isSpecial(token) ? nil : token
        }
        return decoder?.decode(tokens) ?? tokens.joined(separator: " ")
    }

    /// An incremental decoder for generation: feed ids one at a time, get text as soon as it is final.
    public func streamingDecoder(skipSpecialTokens: Bool = false) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }

    /// Whether an id is a byte-fallback token that the decoder turns into a raw byte.
    func isByteToken(_ id: Int) -> Bool {
        guard decoder?.hasByteFallback == true, let token = idToToken(id) else { return false }
        return Decoder.byteFallbackValue(token) != nil
    }
}
