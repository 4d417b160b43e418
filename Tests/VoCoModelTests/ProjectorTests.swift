import Foundation
import SafeTensors
import Testing
@testable import VoCoModel

/// The `linear` projector (the fixture model uses `mlp2x_gelu`): one Linear with bias.
@Suite struct ProjectorTests {
    @Test func linearProjectorIsOneAffineMap() throws {
        let dir = try editedModel { $0["mm_projector_type"] = "linear" }
        let file = try SafeTensorsFile(path: dir + "/model.safetensors")
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        let weight: [Float] = (0..<(48 * 32)).map { (i: Int) -> Float in Float((i * 37) % 101) / 500 - 0.1 }  // [48][32]
        let bias: [Float] = (0..<48).map { (i: Int) -> Float in Float(i) / 100 }
        var writer = SafeTensorsWriter()
        for t in file.tensors where !t.name.hasPrefix("model.mm_projector.") {
            try writer.add(t.name, dtype: t.dtype, shape: t.shape, bytes: Data(t.bytes))
        }
        try writer.add("model.mm_projector.weight", shape: [48, 32], floats: weight, as: .bf16)
        try writer.add("model.mm_projector.bias", shape: [48], floats: bias)
        try writer.write(to: dir + "/model.safetensors")

        let engine = try VoCoEngine(directory: dir)
        let result = try engine.compress(pixels: Fixtures.pixels(1), images: 1)
        #expect(maxAbsDifference(result.features, Array(try Fixtures.floats("vision_features").prefix(16 * 32))) <= 1e-4)
        let rounded = weight.map { bfloat16BitsToFloat(floatToBFloat16Bits($0)) }
        let expected = (0..<(16 * 48)).map { index -> Float in
            let row = index / 48, column = index % 48
            var s = Double(bias[column])
            for i in 0..<32 { s += Double(result.features[row * 32 + i]) * Double(rounded[column * 32 + i]) }
            return Float(s)
        }
        #expect(maxAbsDifference(result.projected, expected) <= 1e-4)
    }
}
