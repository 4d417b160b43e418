import Foundation
import SafeTensors
import Testing
@testable import VoCoModel

/// One test per class of bad input, each expecting its own error and never a crash.
@Suite struct MalformedInputTests {
    /// A copy of the fixture model whose model.safetensors is replaced by `bytes`.
    func modelWithWeights(_ bytes: Data) throws -> String {
        let dir = try editedModel { _ in }
        try bytes.write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        return dir
    }

    /// A safetensors file with a hand-written header.
    func rawSafetensors(header: String, data: [UInt8]) -> Data {
        var bytes = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(Data(header.utf8))
        bytes.append(contentsOf: data)
        return bytes
    }

    // MARK: - Weights

    @Test func truncatedSafetensorsHeader() throws {
        let dir = try modelWithWeights(Data([0x10, 0, 0]))
        #expect(throws: SafeTensorsError.truncatedHeader(path: dir + "/model.safetensors", fileSize: 3)) {
            try VoCoEngine(directory: dir)
        }
    }

    @Test func tensorOutsideTheFile() throws {
        let dir = try modelWithWeights(rawSafetensors(
            header: #"{"model.norm.weight":{"dtype":"F32","shape":[48],"data_offsets":[0,192]}}"#, data: [0, 0, 0, 0]))
        #expect(throws: SafeTensorsError.tensorOutOfBounds(path: dir + "/model.safetensors", tensor: "model.norm.weight",
                                                           begin: 0, end: 192, dataSize: 4)) {
            try VoCoEngine(directory: dir)
        }
    }

    @Test func unknownDType() throws {
        let dir = try modelWithWeights(rawSafetensors(
            header: #"{"model.norm.weight":{"dtype":"F8_E4M3","shape":[48],"data_offsets":[0,48]}}"#, data: Array(repeating: 0, count: 48)))
        #expect(throws: SafeTensorsError.unknownDType(path: dir + "/model.safetensors", tensor: "model.norm.weight", dtype: "F8_E4M3")) {
            try VoCoEngine(directory: dir)
        }
    }

    @Test func weightOfTheWrongShape() throws {
        let dir = try editedModel { $0["intermediate_size"] = 80 }
        #expect {
            try VoCoEngine(directory: dir)
        } throws: { error in
            guard case let ModelError.weights(_, problems) = error else { return false }
            return problems.contains(.wrongShape(tensor: "model.layers.0.mlp.gate_proj.weight", expected: [80, 48], actual: [96, 48]))
                && problems.count == 9  // gate, up, down of three layers
        }
    }

    @Test func integerWeightIsRefusedByName() throws {
        let dir = try editedModel { _ in }
        let file = try SafeTensorsFile(path: Fixtures.model() + "/model.safetensors")
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        var writer = SafeTensorsWriter()
        for t in file.tensors where t.name != "model.norm.weight" { try writer.add(t.name, dtype: t.dtype, shape: t.shape, bytes: Data(t.bytes)) }
        try writer.add("model.norm.weight", dtype: .i32, shape: [48], bytes: Data(count: 192))
        try writer.write(to: dir + "/model.safetensors")
        #expect(throws: ModelError.weights(directory: dir, problems: [.unsupportedDType(tensor: "model.norm.weight", dtype: .i32)])) {
            try VoCoEngine(directory: dir)
        }
    }

    // MARK: - config.json

    @Test(arguments: [("hidden_size", nil), ("vision_config", "patch_size"), ("voco", nil)])
    func missingConfigField(section: String, field: String?) throws {
        let dir = try editedModel {
            if let field, var nested = $0[section] as? [String: Any] {
                nested[field] = nil
                $0[section] = nested
            } else {
                $0[section] = nil
            }
        }
        if section == "voco" {
            // Not required: an absent voco section is a plain LLaVA checkpoint.
            #expect(try VoCoEngine(directory: dir).settings == .plainLLaVA)
        } else {
            let name = field.map { "\(section).\($0)" } ?? section
            #expect(throws: ModelError.missingConfigField(path: dir + "/config.json", field: name)) { try VoCoEngine(directory: dir) }
        }
    }

    @Test(arguments: [
        ("rope_scaling", #"{"type": "linear", "factor": 2}"#, "rope_scaling"),
        ("hidden_act", #""gelu""#, "hidden_act"),
        ("attention_bias", "true", "attention_bias"),
        ("mm_projector_type", #""resampler""#, "mm_projector_type"),
        ("rope_parameters", #"{"rope_type": "yarn", "rope_theta": 10000}"#, "rope_parameters.rope_type"),
        ("voco", #"{"layout": "grid"}"#, "voco.layout"),
        ("vision_config", #"{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4, "image_size": 32, "patch_size": 8, "hidden_act": "relu"}"#, "vision_config.hidden_act"),
        ("model_type", #""mllama""#, "model_type"),
    ])
    func unsupportedConfigValue(key: String, json: String, field: String) throws {
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)
        let dir = try editedModel { $0[key] = value }
        #expect {
            try VoCoEngine(directory: dir)
        } throws: { error in
            guard case let ModelError.unsupportedConfigValue(path, f, _, _) = error else { return false }
            return path == dir + "/config.json" && f == field
        }
    }

    @Test func invalidConfigValuesAreNamed() throws {
        for (key, value, field) in [("num_key_value_heads", 3, "num_key_value_heads"), ("mm_vision_select_layer", 7, "mm_vision_select_layer"),
                                    ("mm_hidden_size", 40, "mm_hidden_size")] as [(String, Any, String)] {
            let dir = try editedModel { $0[key] = value }
            #expect(performing: { try VoCoEngine(directory: dir) }, throws: { error in
                guard case let ModelError.invalidConfigValue(_, f, _, _) = error else { return false }
                return f == field
            })
        }
    }

    @Test func configThatIsNotJSON() throws {
        let dir = try editedModel { _ in }
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        #expect(throws: ModelError.self) { try VoCoEngine(directory: dir) }
    }

    // MARK: - Pass inputs

    @Test func badPassInputsAreRefused() throws {
        let engine = try Fixtures.engine()
        #expect(throws: ModelError.inputShape(what: "pixel_values", expected: [2, 3, 32, 32], actual: [100])) {
            try engine.compress(pixels: [Float](repeating: 0, count: 100), images: 2)
        }
        #expect(throws: ModelError.tokenOutOfRange(token: 64, vocabularySize: 64)) {
            try engine.queryLogits(caches: [], tokens: [3, 64])
        }
        let narrow = try VoCoCache(mode: .voco, layers: 3, rows: 2, width: 12, firstPosition: 19,
                                   keys: .init(repeating: 0, count: 72), values: .init(repeating: 0, count: 72))
        #expect(throws: ModelError.self) { try engine.queryLogits(caches: [narrow], tokens: [3]) }
        let session = try QuerySession(engine: engine, caches: [], textCapacity: 2)
        try session.append([3, 4])
        #expect(throws: ModelError.contextFull(capacity: 2, needed: 3)) { try session.append(token: 5) }
    }
}
