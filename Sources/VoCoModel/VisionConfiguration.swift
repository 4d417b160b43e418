import Foundation

// MARK: - CLIP vision tower and LLaVA mm_* fields

/// Hugging Face `CLIPVisionConfig` fields. Required: `hidden_size`, `intermediate_size`,
/// `num_hidden_layers`, `num_attention_heads`, `image_size`, `patch_size`; defaults:
/// `num_channels` 3 (only 3), `layer_norm_eps` 1e-5 (finite, >= 0), `hidden_act` `quick_gelu`
/// (or `gelu`). Sizes whose weights could not exist are refused (`ConfigLimits`).
public struct CLIPVisionConfiguration: Codable, Sendable, Equatable {
    public enum Activation: String, Codable, Sendable { case quickGELU = "quick_gelu", gelu }

    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var imageSize: Int
    public var patchSize: Int
    public var layerNormEps: Double
    public var hiddenAct: Activation

    public init(hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                imageSize: Int, patchSize: Int, layerNormEps: Double = 1e-5, hiddenAct: Activation = .quickGELU) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.layerNormEps = layerNormEps
        self.hiddenAct = hiddenAct
    }

    /// Patches per side and in all.
    public var patchesPerSide: Int { imageSize / patchSize }
    public var patchCount: Int { patchesPerSide * patchesPerSide }
    public var headDim: Int { hiddenSize / numAttentionHeads }

    public init(from decoder: Decoder) throws {
        let c = try ConfigContainer(decoder)
        hiddenSize = try c.positive("hidden_size", c.required("hidden_size"))
        intermediateSize = try c.positive("intermediate_size", c.required("intermediate_size"))
        numHiddenLayers = try c.positive("num_hidden_layers", c.required("num_hidden_layers"))
        numAttentionHeads = try c.positive("num_attention_heads", c.required("num_attention_heads"))
        guard hiddenSize % numAttentionHeads == 0 else {
            throw ConfigValueError(field: c.path("num_attention_heads"), value: "\(numAttentionHeads)",
                                   kind: .invalid(expected: "a divisor of hidden_size (\(hiddenSize))"))
        }
        imageSize = try c.positive("image_size", c.required("image_size"))
        patchSize = try c.positive("patch_size", c.required("patch_size"))
        guard imageSize % patchSize == 0 else {
            throw ConfigValueError(field: c.path("patch_size"), value: "\(patchSize)",
                                   kind: .invalid(expected: "a divisor of image_size (\(imageSize))"))
        }
        try c.only("num_channels", 3, describedAs: "3")
        layerNormEps = try c.finite("layer_norm_eps", c.optional("layer_norm_eps", default: 1e-5), above: false)
        // Every weight's element count, before patch and position arithmetic can overflow.
        let side = imageSize / patchSize, hidden = ("hidden_size", hiddenSize)
        let patches = try c.elements("the patches of an image", [("image_size", side), ("image_size", side)],
                                     shown: "(image_size / patch_size)^2 = \(side)^2")
        _ = try c.elements("the position embeddings", [("image_size", patches + 1), hidden],
                           shown: "(1 + \(patches) patches) x hidden_size \(hiddenSize)")
        _ = try c.elements("the patch embedding", [hidden, ("num_channels", 3), ("patch_size", patchSize), ("patch_size", patchSize)])
        _ = try c.elements("the MLP", [("intermediate_size", intermediateSize), hidden])
        let act = try c.oneOf("hidden_act", c.optional("hidden_act", default: "quick_gelu"), ["quick_gelu", "gelu"])
        hiddenAct = Activation(rawValue: act) ?? .quickGELU
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ConfigKey.self)
        try c.encode(hiddenSize, forKey: ConfigKey("hidden_size"))
        try c.encode(intermediateSize, forKey: ConfigKey("intermediate_size"))
        try c.encode(numHiddenLayers, forKey: ConfigKey("num_hidden_layers"))
        try c.encode(numAttentionHeads, forKey: ConfigKey("num_attention_heads"))
        try c.encode(imageSize, forKey: ConfigKey("image_size"))
        try c.encode(patchSize, forKey: ConfigKey("patch_size"))
        try c.encode(3, forKey: ConfigKey("num_channels"))
        try c.encode(layerNormEps, forKey: ConfigKey("layer_norm_eps"))
        try c.encode(hiddenAct, forKey: ConfigKey("hidden_act"))
    }
}

/// LLaVA's `mm_*` fields (top level of config.json). Required: `mm_hidden_size`; defaults as
/// LLaVA's code: `mm_projector_type` `linear`, `mm_vision_select_layer` -2,
/// `mm_vision_select_feature` `patch`, `image_aspect_ratio` `square`.
public struct MultimodalConfiguration: Codable, Sendable, Equatable {
    public enum ProjectorType: String, Codable, Sendable, CaseIterable { case linear, mlp2xGELU = "mlp2x_gelu" }
    public enum SelectFeature: String, Codable, Sendable, CaseIterable { case patch, clsPatch = "cls_patch" }

    public var mmHiddenSize: Int
    public var projectorType: ProjectorType
    public var selectLayer: Int
    public var selectFeature: SelectFeature
    public var imageAspectRatio: String
    public var visionTower: String?

    public init(mmHiddenSize: Int, projectorType: ProjectorType = .mlp2xGELU, selectLayer: Int = -2,
                selectFeature: SelectFeature = .patch, imageAspectRatio: String = "pad", visionTower: String? = nil) {
        self.mmHiddenSize = mmHiddenSize
        self.projectorType = projectorType
        self.selectLayer = selectLayer
        self.selectFeature = selectFeature
        self.imageAspectRatio = imageAspectRatio
        self.visionTower = visionTower
    }

    public init(from decoder: Decoder) throws {
        let c = try ConfigContainer(decoder)
        mmHiddenSize = try c.positive("mm_hidden_size", c.required("mm_hidden_size"))
        let projector = try c.oneOf("mm_projector_type", c.optional("mm_projector_type", default: "linear"),
                                    ProjectorType.allCases.map(\.rawValue))
        projectorType = ProjectorType(rawValue: projector) ?? .linear
        selectLayer = try c.optional("mm_vision_select_layer", default: -2)
        let feature = try c.oneOf("mm_vision_select_feature", c.optional("mm_vision_select_feature", default: "patch"),
                                  SelectFeature.allCases.map(\.rawValue))
        selectFeature = SelectFeature(rawValue: feature) ?? .patch
        imageAspectRatio = try c.optional("image_aspect_ratio", default: "square")
        visionTower = try c.optional("mm_vision_tower", String.self)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ConfigKey.self)
        try c.encode(mmHiddenSize, forKey: ConfigKey("mm_hidden_size"))
        try c.encode(projectorType, forKey: ConfigKey("mm_projector_type"))
        try c.encode(selectLayer, forKey: ConfigKey("mm_vision_select_layer"))
        try c.encode(selectFeature, forKey: ConfigKey("mm_vision_select_feature"))
        try c.encode(imageAspectRatio, forKey: ConfigKey("image_aspect_ratio"))
        try c.encodeIfPresent(visionTower, forKey: ConfigKey("mm_vision_tower"))
    }
}
