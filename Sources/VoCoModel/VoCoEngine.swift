import Foundation
import SafeTensors
import VoCoCompute

// MARK: - Loading a model directory

/// How a model is loaded.
public struct LoadOptions: Sendable {
    public var weightPolicy: WeightPolicy
    /// The backend of the products when `compute` is nil (default: VoCoKernels at the CPU's
    /// best level, or `$VOCO_BACKEND`).
    public var backend: ComputeBackend
    /// Compute to use (default: `backend` on `$VOCO_THREADS` or every core).
    public var compute: ComputeContext?

    public init(weightPolicy: WeightPolicy = .default, backend: ComputeBackend = .default, compute: ComputeContext? = nil) {
        self.weightPolicy = weightPolicy
        self.backend = backend
        self.compute = compute
    }
}

/// A loaded LLaVA/VoCo model: vision tower, projector and LLaMA decoder, with the VoCo settings
/// of its config.json. Its passes (`compress`, `QuerySession`, `generate`) run one at a time
/// (a lock serialises them); each pass uses every core.
public final class VoCoEngine: @unchecked Sendable {
    public let directory: String
    public let configuration: LlavaConfiguration
    public let language: LlamaModel
    /// `nil` for a text-only model.
    public let vision: CLIPVisionTower?
    public let projector: Projector?
    public let compute: ComputeContext
    /// Whether half-precision weights were widened to F32 at load (see `WeightPolicy`).
    public let weightsWidened: Bool
    /// Where the vision tower's weights came from (the model directory or `mm_vision_tower`).
    public let visionTowerDirectory: String?
    let lock = NSLock()

    /// The model's VoCo settings (k, layout, mode, token ids, prompt template).
    public var settings: VoCoSettings { configuration.voco }
    public var text: LlamaConfiguration { configuration.text }

    public convenience init(directory: String) throws { try self.init(directory: directory, options: LoadOptions()) }

    /// Reads config.json, finds the vision tower, checks every tensor's presence and shape (all
    /// problems reported together), and maps the weights. Nothing is computed.
    public init(directory: String, options: LoadOptions) throws {
        self.directory = directory
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        let config = try LlavaConfiguration.load(path: configPath)
        configuration = config
        compute = options.compute ?? ComputeContext(backend: options.backend)
        let weights = try TensorDirectory(directory: directory)

        var tower: (config: CLIPVisionConfiguration, weights: TensorDirectory, prefix: String, directory: String)?
        if let mm = config.multimodal {
            tower = try Self.findVisionTower(config: config, multimodal: mm, configPath: configPath, weights: weights)
        }
        var halfBytes = WeightLoader.halfBytes(weights)
        if let tower, tower.weights !== weights { halfBytes += WeightLoader.halfBytes(tower.weights) }
        weightsWidened = options.weightPolicy.widens(halfBytes: halfBytes)

        let loader = WeightLoader(directory: weights, widen: weightsWidened, multiplier: compute.multiplier)
        language = LlamaModel(config: config.text, weights: loader)
        if let mm = config.multimodal, let tower {
            let layerCount = tower.config.numHiddenLayers
            let selected = mm.selectLayer < 0 ? layerCount + 1 + mm.selectLayer : mm.selectLayer
            guard (0...layerCount).contains(selected) else {
                throw ModelError.invalidConfigValue(path: configPath, field: "mm_vision_select_layer", value: "\(mm.selectLayer)",
                                                    expected: "an index into the tower's \(layerCount + 1) hidden states (-\(layerCount + 1) ... \(layerCount))")
            }
            guard mm.mmHiddenSize == tower.config.hiddenSize else {
                throw ModelError.invalidConfigValue(path: configPath, field: "mm_hidden_size", value: "\(mm.mmHiddenSize)",
                                                    expected: "the vision tower's hidden_size (\(tower.config.hiddenSize))")
            }
            let towerLoader = tower.weights === weights ? loader.scoped(tower.prefix)
                : WeightLoader(directory: tower.weights, prefix: tower.prefix, widen: weightsWidened, multiplier: compute.multiplier)
            vision = CLIPVisionTower(config: tower.config, selectedHiddenState: selected,
                                     keepsClassToken: mm.selectFeature == .clsPatch, weights: towerLoader)
            projector = Projector(type: mm.projectorType, inputWidth: mm.mmHiddenSize, outputWidth: config.text.hiddenSize,
                                  weights: loader.scoped("model.mm_projector."))
            try towerLoader.throwIfProblems()
            visionTowerDirectory = tower.directory
        } else {
            vision = nil
            projector = nil
            visionTowerDirectory = nil
        }
        try checkPasses(configPath: configPath)
        try loader.throwIfProblems()
    }

    // MARK: - Vision tower lookup (Schemas/model-format.md, "The vision tower is found in this order")

    static let insidePrefix = "model.vision_tower.vision_tower.vision_model."
    static let separatePrefix = "vision_model."

    private static func findVisionTower(config: LlavaConfiguration, multimodal mm: MultimodalConfiguration,
                                        configPath: String, weights: TensorDirectory) throws
        -> (config: CLIPVisionConfiguration, weights: TensorDirectory, prefix: String, directory: String) {
        let directory = weights.directory
        if let vision = config.vision, weights[insidePrefix + "embeddings.patch_embedding.weight"] != nil {
            return (vision, weights, insidePrefix, directory)
        }
        if let name = mm.visionTower {
            let path = name.hasPrefix("/") ? name : (directory as NSString).appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                let towerConfigPath = (path as NSString).appendingPathComponent("config.json")
                let towerConfig = try ConfigFile.decode(CLIPVisionModelConfig.self, path: towerConfigPath).vision
                let towerWeights = try TensorDirectory(directory: path)
                // transformers 4 (and hub checkpoints) write "vision_model."; transformers 5 writes no prefix.
                let prefix = towerWeights[separatePrefix + "embeddings.patch_embedding.weight"] != nil ? separatePrefix : ""
                return (towerConfig, towerWeights, prefix, path)
            }
            if let vision = config.vision { return (vision, weights, insidePrefix, directory) }
            throw ModelError.visionTowerNotFound(path: configPath, reason: "'mm_vision_tower' is \"\(name)\", which is not a directory (looked for \(path)), and there is no 'vision_config'")
        }
        if let vision = config.vision { return (vision, weights, insidePrefix, directory) }
        throw ModelError.visionTowerNotFound(path: configPath, reason: "neither 'vision_config' nor 'mm_vision_tower' is set")
    }
}

/// config.json of a `CLIPVisionModel` directory: the fields at top level, or under `vision_config`
/// (a whole CLIPModel's config).
struct CLIPVisionModelConfig: Decodable {
    let vision: CLIPVisionConfiguration

    init(from decoder: Decoder) throws {
        let c = try ConfigContainer(decoder)
        vision = c.has("vision_config") ? try c.required("vision_config") : try CLIPVisionConfiguration(from: decoder)
    }
}
