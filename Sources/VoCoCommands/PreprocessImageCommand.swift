import ArgumentParser
import Foundation
import SafeTensors
import VoCoImage

extension AspectRatioMode: ExpressibleByArgument {}

/// `voco debug preprocess-image --model DIR -o OUT IMAGE...`: the vision tower's input for
/// each image, as the model directory's preprocessor_config.json and config.json prescribe.
struct PreprocessImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess-image",
        abstract: "Decode JPEG/PNG files and write their model input, pixel_values [N,3,H,W] F32, as safetensors.",
        discussion: """
            Reads MODEL/preprocessor_config.json and MODEL/config.json's image_aspect_ratio (pad = LLaVA's \
            expand2square, anything else or no config.json = CLIP's resize and centre crop). EXIF orientation \
            is applied; alpha is dropped. All images must come out the same size.
            """
    )

    @Option(help: "Model directory.")
    var model: String

    @Option(name: [.short, .long], help: "Output .safetensors file.")
    var output: String

    @Option(help: "pad or crop, overriding config.json's image_aspect_ratio.")
    var aspectRatio: AspectRatioMode?

    @Option(help: "Refuse an image with more pixels than this.")
    var maxPixels = ImageLimits.default.maximumPixels

    @Argument(help: "JPEG or PNG files (the format is read from the content).")
    var images: [String]

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image file") }
        try require("max-pixels", maxPixels, in: 1...(1 << 30), "a gigapixel image takes 3 GiB decoded")
    }

    func run() throws {
        let processor = try ImagePreprocessor(modelDirectory: model, mode: aspectRatio)
        let limits = ImageLimits(maximumPixels: maxPixels)
        var values: [Float] = []  // [N][3][H][W]
        var size: (height: Int, width: Int)? = nil
        var digests: [String] = []
        for path in images {
            let loaded = try ImageFile.load(path: path, limits: limits)
            let tensor = try processor.tensor(loaded.image, source: path)
            if let size, size != (tensor.height, tensor.width) {
                throw ValidationError("\(path) gives a \(tensor.height)x\(tensor.width) input but \(images[0]) gives \(size.height)x\(size.width); process them separately")
            }
            size = (tensor.height, tensor.width)
            values += tensor.values
            digests.append(loaded.sha256Hex)
            let d = loaded.decoded
            print("\(path)\tsha256 \(loaded.sha256Hex)\t\(d.format.rawValue) \(d.image.width)x\(d.image.height) orientation \(d.orientation) -> 3x\(tensor.height)x\(tensor.width)")
        }
        guard let size else { return }
        var writer = SafeTensorsWriter(metadata: [
            "format": "pt",
            "aspect_ratio": processor.mode.rawValue,
            "sha256": digests.joined(separator: ","),
        ])
        try writer.add("pixel_values", shape: [images.count, 3, size.height, size.width], floats: values)
        try writer.write(to: output)
        print("wrote pixel_values [\(images.count), 3, \(size.height), \(size.width)] (\(processor.mode.rawValue)) to \(output)")
    }
}
