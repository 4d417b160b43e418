import ArgumentParser
import Foundation
import SafeTensors
import VoCoModel

/// `voco debug compress`: the compression pass on preprocessed pixels, every stage's output saved.
struct CompressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Run the compression pass on pixel_values [N,3,H,W] and save features, projector output and VoCo K/V.",
        discussion: """
            Writes vision_features [N,P,mm_hidden], projected [N,P,hidden], voco_k and voco_v \
            [N,layers,P',kvHeads*headDim] (K before RoPE; in full/avgpool mode the rows kept), \
            first_position [N] (I64) and the mode in the metadata.
            """
    )

    @OptionGroup var model: ModelOption

    @Option(help: "A safetensors file with pixel_values [N,3,H,W] (already preprocessed).")
    var pixels: String

    @Option(help: "Where to write the results (safetensors).")
    var out: String

    @Option(help: "voco, full or avgpool; default the model's mode.")
    var mode: VoCoMode?

    func run() throws {
        let engine = try model.load()
        let input = try SafeTensorsFile(path: pixels).tensor("pixel_values")
        guard let size = engine.vision?.config.imageSize else { throw ModelError.noVisionTower(path: engine.directory) }
        guard input.shape.count == 4, input.shape.dropFirst() == [3, size, size] else {
            throw ModelError.inputShape(what: "\(pixels): pixel_values", expected: [input.shape.first ?? 1, 3, size, size], actual: input.shape)
        }
        let result = try engine.compress(pixels: input.floats(), images: input.shape[0], mode: mode)
        try CompressionFile.write(result, engine: engine, to: out)
        let rows = result.caches.first?.rows ?? 0
        print("\(result.caches.count) image(s), mode \(mode ?? engine.settings.mode), \(rows) row(s) kept per image -> \(out)")
    }
}
