import Foundation
import SafeTensors
import Testing
@testable import VoCoModel

/// The same weights laid out as shards, or with the vision tower in its own directory, give
/// the same results as the single-file fixture.
@Suite struct CheckpointLayoutTests {
    static let tower = "model.vision_tower.vision_tower.vision_model."

    /// Compresses the three fixture images and runs the one-image query.
    func check(_ directory: String) throws {
        let engine = try VoCoEngine(directory: directory)
        let result = try engine.compress(pixels: Fixtures.pixels(), images: 3)
        #expect(maxAbsDifference(result.features, try Fixtures.floats("vision_features")) <= 1e-4)
        #expect(maxAbsDifference(concatenated(result.caches, keys: true), try Fixtures.floats("voco_k")) <= 1e-4)
        let logits = try engine.queryLogits(caches: [result.caches[0]], tokens: Fixtures.text())
        #expect(maxAbsDifference(logits, try Fixtures.floats("query_logits")) <= 1e-4)
    }

    @Test func shardedCheckpoint() throws {
        let dir = try editedModel { _ in }
        let file = try SafeTensorsFile(path: dir + "/model.safetensors")
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        let shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        func shard(_ name: String) -> String { name.hasPrefix("model.layers.") || name == "lm_head.weight" ? shards[1] : shards[0] }
        for s in shards { try rewriteTensors(file, to: dir + "/" + s) { shard($0) == s ? $0 : nil } }
        let map = Dictionary(uniqueKeysWithValues: file.tensors.map { ($0.name, shard($0.name)) })
        try JSONSerialization.data(withJSONObject: ["metadata": [:] as [String: Any], "weight_map": map])
            .write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        #expect(try TensorDirectory(directory: dir).files.count == 2)
        try check(dir)
    }

    /// `mm_vision_tower` naming a CLIPVisionModel directory, with transformers 4's
    /// `vision_model.` names or transformers 5's unprefixed names, and its config at top level
    /// or under `vision_config`.
    @Test(arguments: [("vision_model.", false), ("", true)])
    func separateVisionTowerDirectory(prefix: String, nestedConfig: Bool) throws {
        var visionConfig: [String: Any] = [:]
        let dir = try editedModel {
            visionConfig = $0["vision_config"] as? [String: Any] ?? [:]
            $0["vision_config"] = nil
            $0["mm_vision_tower"] = "clip-tower"
        }
        let file = try SafeTensorsFile(path: dir + "/model.safetensors")
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        try rewriteTensors(file, to: dir + "/model.safetensors") { $0.hasPrefix(Self.tower) ? nil : $0 }
        let towerDir = dir + "/clip-tower"
        try FileManager.default.createDirectory(atPath: towerDir, withIntermediateDirectories: true)
        try rewriteTensors(file, to: towerDir + "/model.safetensors") {
            $0.hasPrefix(Self.tower) ? prefix + $0.dropFirst(Self.tower.count) : nil
        }
        let config: [String: Any] = nestedConfig ? ["model_type": "clip", "vision_config": visionConfig] : visionConfig
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: towerDir + "/config.json"))
        try check(dir)
        #expect(try VoCoEngine(directory: dir).visionTowerDirectory == towerDir)
    }

    @Test func missingVisionTowerNamesTheField() throws {
        let dir = try editedModel {
            $0["vision_config"] = nil
            $0["mm_vision_tower"] = "openai/clip-vit-large-patch14-336"
        }
        #expect {
            try VoCoEngine(directory: dir)
        } throws: { error in
            guard case let ModelError.visionTowerNotFound(_, reason) = error else { return false }
            return reason.contains("mm_vision_tower") && "\(error)".contains("vision_config")
        }
    }

    @Test func everyMissingAndMisshapedTensorIsReportedTogether() throws {
        let dir = try editedModel { _ in }
        let file = try SafeTensorsFile(path: dir + "/model.safetensors")
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        var writer = SafeTensorsWriter()
        for t in file.tensors where t.name != "model.norm.weight" && t.name != Self.tower + "pre_layrnorm.bias" {
            if t.name == "model.layers.1.mlp.up_proj.weight" {
                try writer.add(t.name, shape: [48, 96], floats: t.floats())
            } else {
                try writer.add(t.name, dtype: t.dtype, shape: t.shape, bytes: Data(t.bytes))
            }
        }
        try writer.write(to: dir + "/model.safetensors")
        #expect(throws: ModelError.weights(directory: dir, problems: [
            .wrongShape(tensor: "model.layers.1.mlp.up_proj.weight", expected: [96, 48], actual: [48, 96]),
            .missing(tensor: "model.norm.weight"),
            .missing(tensor: Self.tower + "pre_layrnorm.bias"),
        ])) { try VoCoEngine(directory: dir) }
    }
}
