import Foundation
import SafeTensors
import VoCoModel

// MARK: - A random LLaVA/VoCo checkpoint of any size, for benchmarks

/// Writes config.json + model.safetensors of a random model with LLaVA names into `directory`.
/// Weights are scaled by 1/sqrt(fan_in) so activations stay O(1) whatever the size.
func writeRandomCheckpoint(_ config: LlavaConfiguration, dtype: DType, to directory: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(config).write(to: URL(fileURLWithPath: directory + "/config.json"))

    var state: UInt64 = 0x2545_f491_4f6c_dd1d
    func random(_ count: Int, scale: Float, offset: Float = 0) -> [Float] {
        (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return offset + scale * (Float(state >> 40) * 0x1p-23 - 1)
        }
    }
    var writer = SafeTensorsWriter(metadata: ["format": "pt"])
    func matrix(_ name: String, _ rows: Int, _ columns: Int, shape: [Int]? = nil) throws {
        try writer.add(name, shape: shape ?? [rows, columns], floats: random(rows * columns, scale: 1 / Float(columns).squareRoot()), as: dtype)
    }
    func vector(_ name: String, _ count: Int, norm: Bool = false) throws {
        try writer.add(name, shape: [count], floats: random(count, scale: 0.1, offset: norm ? 1 : 0), as: dtype)
    }

    let t = config.text, h = t.hiddenSize
    try writer.add("model.embed_tokens.weight", shape: [t.vocabSize, h], floats: random(t.vocabSize * h, scale: 1), as: dtype)
    for i in 0..<t.numHiddenLayers {
        let p = "model.layers.\(i)."
        try vector(p + "input_layernorm.weight", h, norm: true)
        try vector(p + "post_attention_layernorm.weight", h, norm: true)
        try matrix(p + "self_attn.q_proj.weight", t.queryWidth, h)
        try matrix(p + "self_attn.k_proj.weight", t.kvWidth, h)
        try matrix(p + "self_attn.v_proj.weight", t.kvWidth, h)
        try matrix(p + "self_attn.o_proj.weight", h, t.queryWidth)
        try matrix(p + "mlp.gate_proj.weight", t.intermediateSize, h)
        try matrix(p + "mlp.up_proj.weight", t.intermediateSize, h)
        try matrix(p + "mlp.down_proj.weight", h, t.intermediateSize)
    }
    try vector("model.norm.weight", h, norm: true)
    if !t.tieWordEmbeddings { try matrix("lm_head.weight", t.vocabSize, h) }

    if let v = config.vision, let mm = config.multimodal {
        let tower = "model.vision_tower.vision_tower.vision_model.", vh = v.hiddenSize
        try matrix(tower + "embeddings.patch_embedding.weight", vh, 3 * v.patchSize * v.patchSize, shape: [vh, 3, v.patchSize, v.patchSize])
        try vector(tower + "embeddings.class_embedding", vh)
        try writer.add(tower + "embeddings.position_embedding.weight", shape: [1 + v.patchCount, vh],
                       floats: random((1 + v.patchCount) * vh, scale: 0.1), as: dtype)
        try vector(tower + "pre_layrnorm.weight", vh, norm: true)
        try vector(tower + "pre_layrnorm.bias", vh)
        for i in 0..<v.numHiddenLayers {
            let p = tower + "encoder.layers.\(i)."
            for norm in ["layer_norm1", "layer_norm2"] {
                try vector(p + norm + ".weight", vh, norm: true)
                try vector(p + norm + ".bias", vh)
            }
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                try matrix(p + "self_attn.\(proj).weight", vh, vh)
                try vector(p + "self_attn.\(proj).bias", vh)
            }
            try matrix(p + "mlp.fc1.weight", v.intermediateSize, vh)
            try vector(p + "mlp.fc1.bias", v.intermediateSize)
            try matrix(p + "mlp.fc2.weight", vh, v.intermediateSize)
            try vector(p + "mlp.fc2.bias", vh)
        }
        try matrix("model.mm_projector.0.weight", h, mm.mmHiddenSize)
        try vector("model.mm_projector.0.bias", h)
        try matrix("model.mm_projector.2.weight", h, h)
        try vector("model.mm_projector.2.bias", h)
    }
    try writer.write(to: directory + "/model.safetensors")
}
