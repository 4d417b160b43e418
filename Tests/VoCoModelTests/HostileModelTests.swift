import Foundation
import SafeTensors
import Testing
@testable import VoCoModel

/// Hostile model directories: each config.json or checkpoint below is refused with an error that
/// names the file and the field (or tensor), at load and in milliseconds, or fails its first pass
/// by name; none computes for long, allocates without bound, hangs or traps. The fixture model
/// (tiny-llava) has vocab 64, max_position_embeddings 256, k = 2, prefix [5, 9] and 16 patches.
@Suite struct HostileModelTests {
    /// A config.json edit and the field its refusal must name.
    struct ConfigCase: CustomTestStringConvertible, Sendable {
        let name: String
        let field: String
        let edit: @Sendable (inout [String: Any]) -> Void
        var testDescription: String { name }
    }

    static func voco(_ key: String, _ value: Any) -> @Sendable (inout [String: Any]) -> Void {
        { json in
            var section = json["voco"] as? [String: Any] ?? [:]
            section[key] = value
            json["voco"] = section
        }
    }

    static func vision(_ key: String, _ value: Any) -> @Sendable (inout [String: Any]) -> Void {
        { json in
            var section = json["vision_config"] as? [String: Any] ?? [:]
            section[key] = value
            json["vision_config"] = section
        }
    }

    static func top(_ key: String, _ value: Any?) -> @Sendable (inout [String: Any]) -> Void {
        { $0[key] = value }
    }

    static let configCases: [ConfigCase] = [
        // Positions: k, the prefix and the patches against max_position_embeddings.
        ConfigCase(name: "k of 100000", field: "voco.num_tokens", edit: voco("num_tokens", 100_000)),
        ConfigCase(name: "k of 5000", field: "voco.num_tokens", edit: voco("num_tokens", 5000)),
        ConfigCase(name: "k of Int.max", field: "voco.num_tokens", edit: voco("num_tokens", Int.max)),
        ConfigCase(name: "k one past the patches' room", field: "voco.num_tokens", edit: voco("num_tokens", 237)),
        ConfigCase(name: "prefix longer than the context", field: "voco.compression_prefix_ids",
                   edit: voco("compression_prefix_ids", Array(repeating: 5, count: 300))),
        ConfigCase(name: "context too short for the patches", field: "voco.num_tokens", edit: top("max_position_embeddings", 20)),
        ConfigCase(name: "max_position_embeddings 0", field: "max_position_embeddings", edit: top("max_position_embeddings", 0)),
        ConfigCase(name: "max_position_embeddings -5", field: "max_position_embeddings", edit: top("max_position_embeddings", -5)),
        // Numbers a pass cannot use.
        ConfigCase(name: "rope_theta 0", field: "rope_parameters.rope_theta",
                   edit: top("rope_parameters", ["rope_type": "default", "rope_theta": 0])),
        ConfigCase(name: "rope_theta -1 at top level", field: "rope_theta", edit: { $0["rope_parameters"] = nil; $0["rope_theta"] = -1 }),
        ConfigCase(name: "rms_norm_eps below 0", field: "rms_norm_eps", edit: top("rms_norm_eps", -1e-5)),
        ConfigCase(name: "layer_norm_eps below 0", field: "vision_config.layer_norm_eps", edit: vision("layer_norm_eps", -1)),
        // Ids outside the vocabulary (64).
        ConfigCase(name: "eos_token_id 64", field: "eos_token_id", edit: top("eos_token_id", 64)),
        ConfigCase(name: "eos_token_id list with -1", field: "eos_token_id", edit: top("eos_token_id", [2, -1])),
        ConfigCase(name: "bos_token_id 1000", field: "bos_token_id", edit: top("bos_token_id", 1000)),
        ConfigCase(name: "voco.token_id 64", field: "voco.token_id", edit: voco("token_id", 64)),
        ConfigCase(name: "prefix id 64", field: "voco.compression_prefix_ids", edit: voco("compression_prefix_ids", [5, 64])),
        ConfigCase(name: "prefix id -1", field: "voco.compression_prefix_ids", edit: voco("compression_prefix_ids", [-1])),
        // The prompt template and the trained maximum.
        ConfigCase(name: "template without {question}", field: "voco.prompt_template", edit: voco("prompt_template", "Answer:")),
        ConfigCase(name: "max_images 0", field: "voco.max_images", edit: voco("max_images", 0)),
        ConfigCase(name: "max_images not an integer", field: "voco.max_images", edit: voco("max_images", "four")),
        // Sizes whose products overflow or no machine could hold.
        ConfigCase(name: "vocab_size 2^62", field: "vocab_size", edit: top("vocab_size", 1 << 62)),
        ConfigCase(name: "hidden_size 2^40", field: "hidden_size", edit: { $0["hidden_size"] = 1 << 40; $0["head_dim"] = nil }),
        ConfigCase(name: "intermediate_size 2^50", field: "intermediate_size", edit: top("intermediate_size", 1 << 50)),
        ConfigCase(name: "heads x head_dim overflowing", field: "num_attention_heads",
                   edit: { $0["num_attention_heads"] = 1 << 40; $0["head_dim"] = 1 << 30; $0["num_key_value_heads"] = 2 }),
        ConfigCase(name: "image_size 2^40 patches", field: "vision_config.image_size",
                   edit: { json in vision("image_size", 1 << 40)(&json); vision("patch_size", 1)(&json) }),
        ConfigCase(name: "hidden_size 0", field: "hidden_size", edit: top("hidden_size", 0)),
        ConfigCase(name: "num_hidden_layers -1", field: "num_hidden_layers", edit: top("num_hidden_layers", -1)),
    ]

    @Test(arguments: configCases)
    func configIsRefusedByField(_ c: ConfigCase) throws {
        let dir = try editedModel("tiny-llava", c.edit)
        let started = Date()
        do {
            let engine = try VoCoEngine(directory: dir)
            Issue.record("\(c.name): loaded (k = \(engine.settings.numTokens))")
        } catch let error as ModelError {
            switch error {
            case let .invalidConfigValue(path, field, _, _), let .unsupportedConfigValue(path, field, _, _):
                #expect(path == dir + "/config.json" && field == c.field, "\(c.name): \(error)")
            default:
                Issue.record("\(c.name): \(error)")
            }
        }
        #expect(Date().timeIntervalSince(started) < 5, "\(c.name): refusing took too long")
    }

    /// The last k that fits loads: BOS + 2 prefix ids + 16 patches + 236 VoCo tokens = 255 rows,
    /// the 256th position for text.
    @Test func theLargestKThatFitsLoads() throws {
        let engine = try VoCoEngine(directory: try editedModel("tiny-llava", Self.voco("num_tokens", 236)))
        #expect(engine.compressionLayout(mode: .voco)?.kept.upperBound == 255)
    }

    /// JSON that is no finite number (1e999) is refused naming the file, never read as infinity.
    @Test func overflowingNumberIsRefused() throws {
        let dir = try editedModel { $0["rms_norm_eps"] = "EPS" }
        let path = dir + "/config.json"
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: #""EPS""#, with: "1e999")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(performing: { try VoCoEngine(directory: dir) }, throws: { error in
            switch error as? ModelError {
            case let .invalidConfigValue(p, field, _, _)?: return p == path && field == "rms_norm_eps"
            case let .invalidJSON(p, _)?: return p == path
            default: return false
            }
        })
    }

    // MARK: - Files that are not what they claim

    @Test func configThatIsAFIFOOrADirectoryDoesNotHang() throws {
        for kind in ["fifo", "directory"] {
            let dir = try editedModel { _ in }
            let path = dir + "/config.json"
            try FileManager.default.removeItem(atPath: path)
            if kind == "fifo" { #expect(mkfifo(path, 0o600) == 0) } else { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false) }
            #expect(throws: ModelError.cannotRead(path: path, reason: "not a regular file")) { try VoCoEngine(directory: dir) }
        }
    }

    @Test func weightsThatAreAFIFODoNotHang() throws {
        let dir = try editedModel { _ in }
        let path = dir + "/model.safetensors"
        try FileManager.default.removeItem(atPath: path)
        #expect(mkfifo(path, 0o600) == 0)
        #expect(throws: SafeTensorsError.cannotOpen(path: path, reason: "not a regular file")) { try VoCoEngine(directory: dir) }
    }

    @Test func missingConfigIsNamed() throws {
        let dir = try editedModel { _ in }
        try FileManager.default.removeItem(atPath: dir + "/config.json")
        #expect(performing: { try VoCoEngine(directory: dir) }, throws: { error in
            guard case let ModelError.cannotRead(path, _) = error else { return false }
            return path == dir + "/config.json"
        })
    }

    /// Every cut of the checkpoint (header, tensor data, empty) is refused by the file's name.
    @Test(arguments: [0, 7, 200, 4096, 100_000, 431_207])
    func truncatedWeightsAreRefused(_ length: Int) throws {
        let dir = try editedModel { _ in }
        let path = dir + "/model.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(length).write(to: URL(fileURLWithPath: path))
        #expect(performing: { try VoCoEngine(directory: dir) }, throws: { error in
            guard let error = error as? SafeTensorsError else { return false }
            return "\(error)".contains(path)
        })
    }

    @Test func missingTensorIsNamed() throws {
        let dir = try editedModel { _ in }
        try rewriteTensors(try SafeTensorsFile(path: Fixtures.model() + "/model.safetensors"), to: dir + "/model.safetensors") {
            $0 == "lm_head.weight" ? nil : $0
        }
        #expect(throws: ModelError.weights(directory: dir, problems: [.missing(tensor: "lm_head.weight")])) { try VoCoEngine(directory: dir) }
    }

    // MARK: - Non-finite weights: refused by name when a pass meets them

    /// A copy of the fixture whose tensor `name` has one value replaced by `value`.
    func modelWithPoisonedTensor(_ name: String, _ value: Float) throws -> String {
        let dir = try editedModel { _ in }
        let file = try SafeTensorsFile(path: Fixtures.model() + "/model.safetensors")
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        for t in file.tensors {
            var floats = t.floats()
            if t.name == name { floats[floats.count / 2] = value }
            try writer.add(t.name, shape: t.shape, floats: floats, as: t.dtype)
        }
        try writer.write(to: dir + "/model.safetensors")
        return dir
    }

    @Test(arguments: [Float.nan, .infinity])
    func nonFiniteLanguageWeightsFailTheCompressionPassByName(_ value: Float) throws {
        let dir = try modelWithPoisonedTensor("model.layers.0.self_attn.k_proj.weight", value)
        let engine = try VoCoEngine(directory: dir)
        #expect(throws: ModelError.nonFinite(directory: dir, what: "the cache of image 0 of the batch (compression pass)")) {
            try engine.compress(pixels: try Fixtures.pixels(1), images: 1)
        }
    }

    @Test(arguments: [Float.nan, -.infinity])
    func nonFiniteFinalNormFailsGenerationByName(_ value: Float) throws {
        let dir = try modelWithPoisonedTensor("model.norm.weight", value)
        let engine = try VoCoEngine(directory: dir)
        let caches = try engine.compress(pixels: try Fixtures.pixels(1), images: 1).caches  // the final norm is not used here
        #expect(performing: { try engine.generate(caches: caches, prompt: [7, 23], options: GenerationOptions(maxNewTokens: 4)) },
                throws: { error in
                    guard case let ModelError.nonFinite(directory, what) = error else { return false }
                    return directory == dir && what.hasPrefix("the logits at position")
                })
    }

    // MARK: - Run-time numbers

    @Test func hugeTokenLimitsAreRefusedBeforeAllocating() throws {
        let engine = try Fixtures.engine()
        #expect(throws: ModelError.exceedsContext(needed: .max, context: 256)) {
            try engine.generate(caches: [], prompt: [3], options: GenerationOptions(maxNewTokens: .max))
        }
        #expect(throws: ModelError.exceedsContext(needed: 258, context: 256)) {
            try engine.generate(caches: [], prompt: [3, 4, 5], options: GenerationOptions(maxNewTokens: 255))
        }
        #expect(throws: ModelError.self) { try QuerySession(engine: engine, caches: [], textCapacity: .max) }
        #expect(throws: ModelError.self) { try QuerySession(engine: engine, caches: [], textCapacity: 1 << 40) }
    }

    /// The model's own mode is checked at load; a longer mode asked of the compression pass is
    /// checked when it runs (avgpool fits 10 positions, full and voco do not).
    @Test func anotherModeThatDoesNotFitIsRefused() throws {
        let engine = try VoCoEngine(directory: try editedModel { json in
            json["max_position_embeddings"] = 10
            Self.voco("mode", "avgpool")(&json)
        })
        #expect(try engine.compress(pixels: try Fixtures.pixels(1), images: 1).caches.first?.rows == 1)
        #expect(throws: ModelError.exceedsContext(needed: 20, context: 10)) {
            try engine.compress(pixels: try Fixtures.pixels(1), images: 1, mode: .full)
        }
        #expect(throws: ModelError.exceedsContext(needed: 22, context: 10)) {
            try engine.compress(pixels: try Fixtures.pixels(1), images: 1, mode: .voco)
        }
    }
}
