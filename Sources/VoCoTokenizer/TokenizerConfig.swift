import Foundation

/// The parts of `tokenizer_config.json` (a transformers file) a generation loop needs: which
/// tokens are BOS/EOS/UNK/PAD and whether transformers adds BOS/EOS. The `tokenizers` library
/// itself never reads this file: `Tokenizer.encode` follows tokenizer.json's post-processor only.
public struct TokenizerConfig: Equatable, Sendable {
    public var bosToken: String?
    public var eosToken: String?
    public var unkToken: String?
    public var padToken: String?
    public var addBosToken: Bool?
    public var addEosToken: Bool?
    public var modelMaxLength: Int?
    public var cleanUpTokenizationSpaces: Bool?
    public var legacy: Bool?

    public init() {}

    public init(data: Data, path: String) throws {
        let root = JSONField(try JSONValue.parse(data, path: path), path: path)
        guard case .object = root.value else { throw root.expected("an object") }
        bosToken = try TokenizerConfig.tokenContent(root["bos_token"])
        eosToken = try TokenizerConfig.tokenContent(root["eos_token"])
        unkToken = try TokenizerConfig.tokenContent(root["unk_token"])
        padToken = try TokenizerConfig.tokenContent(root["pad_token"])
        addBosToken = root["add_bos_token"].isNull ? nil : try root["add_bos_token"].bool(default: false)
        addEosToken = root["add_eos_token"].isNull ? nil : try root["add_eos_token"].bool(default: false)
        legacy = root["legacy"].isNull ? nil : try root["legacy"].bool(default: false)
        cleanUpTokenizationSpaces = root["clean_up_tokenization_spaces"].isNull
            ? nil : try root["clean_up_tokenization_spaces"].bool(default: false)
        // transformers writes a huge number (1e30) when there is no limit.
        if case let .number(n) = root["model_max_length"].value, n >= 1, n < 1e15 { modelMaxLength = Int(n) }
    }

    /// A token given as a string or as an AddedToken object `{"content": ...}`.
    private static func tokenContent(_ field: JSONField) throws -> String? {
        switch field.value {
        case .null: return nil
        case let .string(s): return s
        case .object: return try field["content"].string()
        default: throw field.expected("a string or {\"content\": ...}")
        }
    }
}
