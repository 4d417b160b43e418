import Foundation
import SafeTensors
import VoCoModel

// MARK: - A random LLaVA/VoCo checkpoint of any size, for benchmarks

/// Writes config.json + model.safetensors of a random model with LLaVA names into `directory`.
/// Weights are scaled by 1/sqrt(fan_in) so activations stay O(1) whatever the size. The file is
/// streamed tensor by tensor, a megabyte at a time, so a 7B checkpoint (13.5 GB in F16) is
/// written in little memory. `vision: false` leaves the tower and projector out (text only).
func writeRandomCheckpoint(_ config: LlavaConfiguration, dtype: DType, to directory: String, vision: Bool = true) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    var written = config
    if !vision { written = LlavaConfiguration(text: config.text, multimodal: nil, vision: nil, voco: config.voco) }
    try encoder.encode(written).write(to: URL(fileURLWithPath: directory + "/config.json"))
    var file = RandomTensorFile()
    file.addLanguageModel(config.text)
    if vision, let v = config.vision, let mm = config.multimodal { file.addVisionTower(v, projectorInput: mm.mmHiddenSize, hidden: config.text.hiddenSize) }
    try file.write(to: directory + "/model.safetensors", dtype: dtype)
}

/// The tensors of a random checkpoint: names, shapes and how to draw their values.
struct RandomTensorFile {
    struct Entry {
        let name: String
        let shape: [Int]
        let scale: Float
        let offset: Float
        var count: Int { shape.reduce(1, *) }
    }

    private(set) var entries: [Entry] = []

    mutating func matrix(_ name: String, _ rows: Int, _ columns: Int, shape: [Int]? = nil) {
        entries.append(Entry(name: name, shape: shape ?? [rows, columns], scale: 1 / Float(columns).squareRoot(), offset: 0))
    }

    mutating func vector(_ name: String, _ count: Int, norm: Bool = false) {
        entries.append(Entry(name: name, shape: [count], scale: 0.1, offset: norm ? 1 : 0))
    }

    mutating func addLanguageModel(_ t: LlamaConfiguration) {
        let h = t.hiddenSize
        entries.append(Entry(name: "model.embed_tokens.weight", shape: [t.vocabSize, h], scale: 1, offset: 0))
        for i in 0..<t.numHiddenLayers {
            let p = "model.layers.\(i)."
            vector(p + "input_layernorm.weight", h, norm: true)
            vector(p + "post_attention_layernorm.weight", h, norm: true)
            matrix(p + "self_attn.q_proj.weight", t.queryWidth, h)
            matrix(p + "self_attn.k_proj.weight", t.kvWidth, h)
            matrix(p + "self_attn.v_proj.weight", t.kvWidth, h)
            matrix(p + "self_attn.o_proj.weight", h, t.queryWidth)
            matrix(p + "mlp.gate_proj.weight", t.intermediateSize, h)
            matrix(p + "mlp.up_proj.weight", t.intermediateSize, h)
            matrix(p + "mlp.down_proj.weight", h, t.intermediateSize)
        }
        vector("model.norm.weight", h, norm: true)
        if !t.tieWordEmbeddings { matrix("lm_head.weight", t.vocabSize, h) }
    }

    mutating func addVisionTower(_ v: CLIPVisionConfiguration, projectorInput: Int, hidden h: Int) {
        let tower = "model.vision_tower.vision_tower.vision_model.", vh = v.hiddenSize
        matrix(tower + "embeddings.patch_embedding.weight", vh, 3 * v.patchSize * v.patchSize, shape: [vh, 3, v.patchSize, v.patchSize])
        vector(tower + "embeddings.class_embedding", vh)
        entries.append(Entry(name: tower + "embeddings.position_embedding.weight", shape: [1 + v.patchCount, vh], scale: 0.1, offset: 0))
        vector(tower + "pre_layrnorm.weight", vh, norm: true)
        vector(tower + "pre_layrnorm.bias", vh)
        for i in 0..<v.numHiddenLayers {
            let p = tower + "encoder.layers.\(i)."
            for norm in ["layer_norm1", "layer_norm2"] {
                vector(p + norm + ".weight", vh, norm: true)
                vector(p + norm + ".bias", vh)
            }
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                matrix(p + "self_attn.\(proj).weight", vh, vh)
                vector(p + "self_attn.\(proj).bias", vh)
            }
            matrix(p + "mlp.fc1.weight", v.intermediateSize, vh)
            vector(p + "mlp.fc1.bias", v.intermediateSize)
            matrix(p + "mlp.fc2.weight", vh, v.intermediateSize)
            vector(p + "mlp.fc2.bias", vh)
        }
        matrix("model.mm_projector.0.weight", h, projectorInput)
        vector("model.mm_projector.0.bias", h)
        matrix("model.mm_projector.2.weight", h, h)
        vector("model.mm_projector.2.bias", h)
    }

    /// Header (the layout `SafeTensorsWriter` writes: names sorted, data in that order), then
    /// every tensor drawn from one LCG stream and converted a chunk at a time.
    func write(to path: String, dtype: DType) throws {
        let ordered = entries.sorted { $0.name < $1.name }
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        var offset = 0
        for e in ordered {
            header[e.name] = ["dtype": dtype.rawValue, "shape": e.shape, "data_offsets": [offset, offset + e.count * dtype.size]] as [String: Any]
            offset += e.count * dtype.size
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        guard FileManager.default.createFile(atPath: path, contents: nil), let out = FileHandle(forWritingAtPath: path) else {
            throw SafeTensorsError.cannotOpen(path: path, reason: "cannot create it")
        }
        defer { try? out.close() }
        var prefix = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { prefix.append(contentsOf: $0) }
        try out.write(contentsOf: prefix + json)

        var state: UInt64 = 0x2545_f491_4f6c_dd1d
        let chunk = 1 << 20
        var values = [Float](repeating: 0, count: chunk)
        var bytes = Data(count: chunk * dtype.size)
        for e in ordered {
            var done = 0
            while done < e.count {
                let n = min(chunk, e.count - done)
                for i in 0..<n {
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    values[i] = e.offset + e.scale * (Float(state >> 40) * 0x1p-23 - 1)
                }
                try bytes.withUnsafeMutableBytes { raw in
                    try values.withUnsafeBufferPointer { try convertFromFloat32($0.baseAddress!, count: n, to: dtype, into: raw.baseAddress!) }
                }
                try out.write(contentsOf: bytes.prefix(n * dtype.size))
                done += n
            }
        }
    }
}
