import Foundation

// MARK: - config.json as a whole

/// A model's config.json: `model_type` `llava_llama` (LLaMA + `mm_*` + optional `vision_config`
/// + optional `voco`) or `llama` (text only). The fields of each part are documented on its type.
public struct LlavaConfiguration: Codable, Sendable, Equatable {
    public enum ModelType: String, Codable, Sendable, CaseIterable { case llavaLlama = "llava_llama", llama }

    public var modelType: ModelType
    public var text: LlamaConfiguration
    /// `nil` for a text-only model.
    public var multimodal: MultimodalConfiguration?
    /// The tower's config when it is inside config.json (`vision_config`).
    public var vision: CLIPVisionConfiguration?
    public var voco: VoCoSettings
    /// Whether config.json has a `voco` section (otherwise `voco` is `.plainLLaVA`).
    public var hasVoCoSection: Bool

    public init(text: LlamaConfiguration, multimodal: MultimodalConfiguration?, vision: CLIPVisionConfiguration?,
                voco: VoCoSettings?) {
        modelType = multimodal == nil ? .llama : .llavaLlama
        self.text = text
        self.multimodal = multimodal
        self.vision = vision
        self.voco = voco ?? .plainLLaVA
        hasVoCoSection = voco != nil
    }

    /// Reads and checks `path` (a config.json); errors name the file and the field.
    public static func load(path: String) throws -> LlavaConfiguration {
        try ConfigFile.decode(LlavaConfiguration.self, path: path)
    }

    public init(from decoder: Decoder) throws {
        let c = try ConfigContainer(decoder)
        let type = try c.oneOf("model_type", c.required("model_type", String.self), ModelType.allCases.map(\.rawValue))
        modelType = ModelType(rawValue: type) ?? .llama
        text = try LlamaConfiguration(from: decoder)
        multimodal = modelType == .llavaLlama ? try MultimodalConfiguration(from: decoder) : nil
        vision = modelType == .llavaLlama ? try c.optional("vision_config", CLIPVisionConfiguration.self) : nil
        hasVoCoSection = c.has("voco")
        voco = try c.optional("voco", VoCoSettings.self) ?? .plainLLaVA
        // A text-only model reads only prompt_template from `voco`: it never compresses an image.
        if hasVoCoSection, modelType == .llavaLlama, voco.mode == .voco, voco.tokenId >= text.vocabSize {
            throw ConfigValueError(field: "voco.token_id", value: "\(voco.tokenId)",
                                   kind: .invalid(expected: "an id inside the vocabulary (vocab_size \(text.vocabSize))"))
        }
        if modelType == .llavaLlama { try Self.checkCompressionTokens(voco, text: text) }
        if let multimodal, let vision, multimodal.mmHiddenSize != vision.hiddenSize {
            throw ConfigValueError(field: "mm_hidden_size", value: "\(multimodal.mmHiddenSize)",
                                   kind: .invalid(expected: "the vision tower's hidden_size (\(vision.hiddenSize))"))
        }
    }

    /// The prefix ids inside the vocabulary, and BOS + prefix + the k VoCo tokens + one text
    /// token within `max_position_embeddings` (the patches are checked when the tower is known,
    /// `VoCoEngine.checkPasses`). Subtractions only: a huge k cannot overflow.
    static func checkCompressionTokens(_ voco: VoCoSettings, text: LlamaConfiguration) throws {
        let prefix = voco.compressionPrefixIds, context = text.maxPositionEmbeddings
        if let bad = prefix.first(where: { $0 >= text.vocabSize }) {
            throw ConfigValueError(field: "voco.compression_prefix_ids", value: "\(bad)",
                                   kind: .invalid(expected: "token ids inside the vocabulary (0 ..< vocab_size \(text.vocabSize))"))
        }
        guard prefix.count <= context - 2 else {
            throw ConfigValueError(field: "voco.compression_prefix_ids", value: "\(prefix.count) ids",
                                   kind: .invalid(expected: "BOS + the prefix + one text token to fit max_position_embeddings (\(context))"))
        }
        let room = context - 2 - prefix.count
        if voco.mode == .voco, voco.numTokens > room {
            throw ConfigValueError(field: "voco.num_tokens", value: "\(voco.numTokens)",
                                   kind: .invalid(expected: "BOS + \(prefix.count) prefix ids + k VoCo tokens + one text token to fit max_position_embeddings (\(context)): k at most \(room), before the patches"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ConfigKey.self)
        try c.encode(modelType, forKey: ConfigKey("model_type"))
        try text.encode(to: encoder)
        try multimodal?.encode(to: encoder)
        try c.encodeIfPresent(vision, forKey: ConfigKey("vision_config"))
        if hasVoCoSection { try c.encode(voco, forKey: ConfigKey("voco")) }
    }
}
