import Foundation

// MARK: - LLaMA fields of config.json

/// The language model's settings, with Hugging Face `LlamaConfig` names and defaults.
/// Required: `hidden_size`, `num_hidden_layers`, `num_attention_heads`, `intermediate_size`,
/// `vocab_size`, `rms_norm_eps`. Refused: `hidden_act` other than `silu`, `attention_bias` or
/// `mlp_bias` true, a non-null `rope_scaling`, a `rope_parameters.rope_type` other than `default`,
/// sizes that are not positive or whose weights could not exist (`ConfigLimits`), `rms_norm_eps`
/// below 0 or `rope_theta` not above 0 (or either not finite), BOS or EOS ids outside the vocabulary.
public struct LlamaConfiguration: Codable, Sendable, Equatable {
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var intermediateSize: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var maxPositionEmbeddings: Int
    public var vocabSize: Int
    public var tieWordEmbeddings: Bool
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]

    /// `hidden_size / num_attention_heads` when `head_dim` is not given.
    public init(hiddenSize: Int, numHiddenLayers: Int, numAttentionHeads: Int, numKeyValueHeads: Int? = nil,
                headDim: Int? = nil, intermediateSize: Int, rmsNormEps: Double = 1e-6, ropeTheta: Double = 10000,
                maxPositionEmbeddings: Int = 2048, vocabSize: Int, tieWordEmbeddings: Bool = false,
                bosTokenId: Int? = 1, eosTokenIds: [Int] = [2]) {
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.headDim = headDim ?? hiddenSize / numAttentionHeads
        self.intermediateSize = intermediateSize
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.vocabSize = vocabSize
        self.tieWordEmbeddings = tieWordEmbeddings
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
    }

    /// Width of one row of K or V: `num_key_value_heads * head_dim`.
    public var kvWidth: Int { numKeyValueHeads * headDim }
    /// Width of one row of Q: `num_attention_heads * head_dim`.
    public var queryWidth: Int { numAttentionHeads * headDim }

    // MARK: Codable

    public init(from decoder: Decoder) throws {
        let c = try ConfigContainer(decoder)
        hiddenSize = try c.positive("hidden_size", c.required("hidden_size"))
        numHiddenLayers = try c.positive("num_hidden_layers", c.required("num_hidden_layers"))
        numAttentionHeads = try c.positive("num_attention_heads", c.required("num_attention_heads"))
        numKeyValueHeads = try c.positive("num_key_value_heads", c.optional("num_key_value_heads", default: numAttentionHeads))
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw ConfigValueError(field: c.path("num_key_value_heads"), value: "\(numKeyValueHeads)",
                                   kind: .invalid(expected: "a divisor of num_attention_heads (\(numAttentionHeads))"))
        }
        if c.has("head_dim") {
            headDim = try c.positive("head_dim", c.required("head_dim"))
        } else {
            guard hiddenSize % numAttentionHeads == 0 else {
                throw ConfigValueError(field: c.path("hidden_size"), value: "\(hiddenSize)",
                                       kind: .invalid(expected: "a multiple of num_attention_heads, or an explicit head_dim"))
            }
            headDim = hiddenSize / numAttentionHeads
        }
        guard headDim % 2 == 0 else {
            throw ConfigValueError(field: c.path("head_dim"), value: "\(headDim)", kind: .invalid(expected: "an even number (rotary pairs)"))
        }
        intermediateSize = try c.positive("intermediate_size", c.required("intermediate_size"))
        rmsNormEps = try c.finite("rms_norm_eps", c.required("rms_norm_eps"), above: false)
        maxPositionEmbeddings = try c.positive("max_position_embeddings", c.optional("max_position_embeddings", default: 2048))
        vocabSize = try c.positive("vocab_size", c.required("vocab_size"))
        tieWordEmbeddings = try c.optional("tie_word_embeddings", default: false)
        bosTokenId = c.contains("bos_token_id") ? try c.optional("bos_token_id", Int.self) : 1
        if let one = try? c.optional("eos_token_id", Int.self) {
            eosTokenIds = [one]
        } else {
            eosTokenIds = c.contains("eos_token_id") ? try c.optional("eos_token_id", default: []) : [2]
        }
        // Ids outside the vocabulary would never be generated (a stop token that never stops).
        if let bosTokenId { _ = try c.token("bos_token_id", bosTokenId, vocabularySize: vocabSize) }
        for id in eosTokenIds { _ = try c.token("eos_token_id", id, vocabularySize: vocabSize) }
        // Every weight's element count, before any shape arithmetic elsewhere can overflow.
        let hidden = ("hidden_size", hiddenSize)
        _ = try c.elements("q_proj", [("num_attention_heads", numAttentionHeads), ("head_dim", headDim), hidden])
        _ = try c.elements("k_proj", [("num_key_value_heads", numKeyValueHeads), ("head_dim", headDim), hidden])
        _ = try c.elements("the MLP", [("intermediate_size", intermediateSize), hidden])
        _ = try c.elements("the embeddings", [("vocab_size", vocabSize), hidden])
        try c.only("hidden_act", "silu", describedAs: "silu")
        try c.only("attention_bias", false, describedAs: "false")
        try c.only("mlp_bias", false, describedAs: "false")
        try c.absent("rope_scaling")
        // transformers 5 writes {"rope_parameters": {"rope_type": "default", "rope_theta": ...}}.
        if c.has("rope_parameters") {
            let rope = try c.nested("rope_parameters")
            try rope.only("rope_type", "default", describedAs: "default")
            ropeTheta = try rope.finite("rope_theta", rope.optional("rope_theta", default: c.optional("rope_theta", default: 10000)), above: true)
        } else {
            ropeTheta = try c.finite("rope_theta", c.optional("rope_theta", default: 10000), above: true)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ConfigKey.self)
        try c.encode(hiddenSize, forKey: ConfigKey("hidden_size"))
        try c.encode(numHiddenLayers, forKey: ConfigKey("num_hidden_layers"))
        try c.encode(numAttentionHeads, forKey: ConfigKey("num_attention_heads"))
        try c.encode(numKeyValueHeads, forKey: ConfigKey("num_key_value_heads"))
        try c.encode(headDim, forKey: ConfigKey("head_dim"))
        try c.encode(intermediateSize, forKey: ConfigKey("intermediate_size"))
        try c.encode(rmsNormEps, forKey: ConfigKey("rms_norm_eps"))
        try c.encode(ropeTheta, forKey: ConfigKey("rope_theta"))
        try c.encode(maxPositionEmbeddings, forKey: ConfigKey("max_position_embeddings"))
        try c.encode(vocabSize, forKey: ConfigKey("vocab_size"))
        try c.encode(tieWordEmbeddings, forKey: ConfigKey("tie_word_embeddings"))
        try c.encode(bosTokenId, forKey: ConfigKey("bos_token_id"))
        try c.encode(eosTokenIds, forKey: ConfigKey("eos_token_id"))
        try c.encode("silu", forKey: ConfigKey("hidden_act"))
    }
}
