import Foundation

// MARK: - The `voco` section of config.json

/// What an image's cache holds (Schemas/model-format.md, "The compression pass").
public enum VoCoMode: String, Codable, Sendable, CaseIterable {
    /// The k VoCo rows after `[BOS][prefix][patches]`.
    case voco
    /// Every row of `[BOS][prefix][patches]`: the uncompressed LLaVA baseline.
    case full
    /// One row: the mean of the projected patches after `[BOS][prefix]`.
    case avgpool
}

/// Where the query pass places the caches of several images.
public enum CacheLayout: String, Codable, Sendable, CaseIterable {
    /// One after another from the first image's first position.
    case sequential
    /// Every image at the positions it had in its compression pass.
    case shared
}

/// The VoCo settings of a model: `voco` in config.json. Fields missing from a present `voco`
/// section take the reference preset's values; an absent section means a plain LLaVA
/// checkpoint (`.plainLLaVA`: mode `full`, layout `shared`).
public struct VoCoSettings: Codable, Sendable, Equatable {
    public var tokenId: Int
    /// k, VoCo tokens per image.
    public var numTokens: Int
    public var mode: VoCoMode
    public var layout: CacheLayout
    /// Token ids between BOS and the patches in the compression pass.
    public var compressionPrefixIds: [Int]
    /// The query text; `{question}` is replaced by the question.
    public var promptTemplate: String
    /// The most images one question was trained to read (`max_images`); `nil` = not known.
    public var maxImages: Int?

    public init(tokenId: Int, numTokens: Int, mode: VoCoMode, layout: CacheLayout,
                compressionPrefixIds: [Int] = [], promptTemplate: String = "{question}", maxImages: Int? = nil) {
        self.tokenId = tokenId
        self.numTokens = numTokens
        self.mode = mode
        self.layout = layout
        self.compressionPrefixIds = compressionPrefixIds
        self.promptTemplate = promptTemplate
        self.maxImages = maxImages
    }

    /// The placeholder a prompt template must hold.
    public static let questionPlaceholder = "{question}"

    /// VoCo-LLaMA's hard-coded values: `<voco>` = 32000, k = 2, single-image (`shared`) layout.
    public static let reference = VoCoSettings(tokenId: 32000, numTokens: 2, mode: .voco, layout: .shared)

    /// A checkpoint without a `voco` section: plain LLaVA, every vision token kept.
    public static let plainLLaVA = VoCoSettings(tokenId: 32000, numTokens: 2, mode: .full, layout: .shared)

    /// The prompt template applied to a question.
    public func prompt(for question: String) -> String {
        promptTemplate.replacingOccurrences(of: "{question}", with: question)
    }

    public init(from decoder: Decoder) throws {
        let c = try ConfigContainer(decoder)
        let preset = Self.reference
        tokenId = try c.optional("token_id", default: preset.tokenId)
        guard tokenId >= 0 else { throw ConfigValueError(field: c.path("token_id"), value: "\(tokenId)", kind: .invalid(expected: "a token id >= 0")) }
        numTokens = try c.positive("num_tokens", c.optional("num_tokens", default: preset.numTokens))
        let modeName = try c.oneOf("mode", c.optional("mode", default: preset.mode.rawValue), VoCoMode.allCases.map(\.rawValue))
        mode = VoCoMode(rawValue: modeName) ?? preset.mode
        let layoutName = try c.oneOf("layout", c.optional("layout", default: preset.layout.rawValue), CacheLayout.allCases.map(\.rawValue))
        layout = CacheLayout(rawValue: layoutName) ?? preset.layout
        compressionPrefixIds = try c.optional("compression_prefix_ids", default: [])
        for id in compressionPrefixIds where id < 0 {
            throw ConfigValueError(field: c.path("compression_prefix_ids"), value: "\(compressionPrefixIds)", kind: .invalid(expected: "token ids >= 0"))
        }
        promptTemplate = try c.optional("prompt_template", default: preset.promptTemplate)
        // Without the placeholder the question would be silently dropped.
        guard promptTemplate.contains(Self.questionPlaceholder) else {
            throw ConfigValueError(field: c.path("prompt_template"), value: "\"\(promptTemplate)\"",
                                   kind: .invalid(expected: "a template that holds \(Self.questionPlaceholder)"))
        }
        maxImages = try c.optional("max_images", Int.self).map { try c.positive("max_images", $0) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ConfigKey.self)
        try c.encode(tokenId, forKey: ConfigKey("token_id"))
        try c.encode(numTokens, forKey: ConfigKey("num_tokens"))
        try c.encode(mode, forKey: ConfigKey("mode"))
        try c.encode(layout, forKey: ConfigKey("layout"))
        try c.encode(compressionPrefixIds, forKey: ConfigKey("compression_prefix_ids"))
        try c.encode(promptTemplate, forKey: ConfigKey("prompt_template"))
        try c.encodeIfPresent(maxImages, forKey: ConfigKey("max_images"))
    }
}
