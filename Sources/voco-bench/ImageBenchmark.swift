import ArgumentParser
import Foundation
import VoCoCommands
import VoCoImage

/// Decode + preprocess throughput for a photo-sized JPEG (default 1024x768, made in memory)
/// to a CLIP input (default 336), against a memcpy of the decoded pixels and the decode alone.
struct ImageBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "JPEG decode + CLIP preprocessing, images/s.")

    @Option(help: "Width of the synthetic JPEG.")
    var width = 1024

    @Option(help: "Height of the synthetic JPEG.")
    var height = 768

    @Option(help: "Model input side (shortest_edge and crop).")
    var size = 336

    @Option(help: "Calls per timed run.")
    var iterations = 20

    @Option(help: "Also write the synthetic JPEG here (to time other implementations on it).")
    var saveJPEG: String?

    func validate() throws {
        try OptionCheck.require("width", width, in: 1...65_500, "JPEG's limit")
        try OptionCheck.require("height", height, in: 1...min(65_500, ImageLimits.default.maximumPixels / width), "the decoder's \(ImageLimits.default.maximumPixels)-pixel limit")
        try OptionCheck.require("size", size, in: 1...4096)
        try OptionCheck.require("iterations", iterations, in: 1...10_000)
    }

    func run() throws {
        let photo = Self.syntheticPhoto(width: width, height: height)
        guard let jpeg = JPEGEncoder.encode(photo, quality: 90) else { throw ValidationError("could not encode the test JPEG") }
        if let saveJPEG { try Data(jpeg).write(to: URL(fileURLWithPath: saveJPEG)) }
        var config = PreprocessorConfig()
        config.size = .shortestEdge(size)
        config.cropSize = (size, size)
        let crop = ImagePreprocessor(config: config, mode: .crop)
        let pad = ImagePreprocessor(config: config, mode: .pad)
        let decoded = try ImageDecoder.decode(jpeg, source: "bench.jpg").image

        var copy = [UInt8](repeating: 0, count: decoded.pixels.count)
        let memcpy = bestSeconds(iterations: iterations) {
            copy.withUnsafeMutableBytes { d in decoded.pixels.withUnsafeBytes { s in d.copyMemory(from: s) } }
        }
        let decode = try bestSeconds(iterations: iterations) { _ = try ImageDecoder.decode(jpeg, source: "bench.jpg") }
        let cropOnly = try bestSeconds(iterations: iterations) { _ = try crop.tensor(decoded) }
        let padOnly = try bestSeconds(iterations: iterations) { _ = try pad.tensor(decoded) }
        let cropBoth = try bestSeconds(iterations: iterations) { _ = try crop.tensor(try ImageDecoder.decode(jpeg, source: "bench.jpg").image) }
        let padBoth = try bestSeconds(iterations: iterations) { _ = try pad.tensor(try ImageDecoder.decode(jpeg, source: "bench.jpg").image) }

        func line(_ label: String, _ seconds: Double) {
            print("\(label): \(formatted(1 / seconds, 1)) images/s (\(formatted(seconds * 1000, 3)) ms)")
        }
        print("input: \(width)x\(height) JPEG, quality 90, 4:2:0, \(jpeg.count) bytes -> 3x\(size)x\(size) float32")
        line("memcpy of the decoded RGB (baseline)", memcpy)
        line("decode only", decode)
        line("preprocess only, crop (resize shortest edge + centre crop)", cropOnly)
        line("preprocess only, pad (expand2square + resize)", padOnly)
        line("decode + preprocess, crop", cropBoth)
        line("decode + preprocess, pad", padBoth)
    }

    /// Smooth gradients, a few hard edges and noise: compresses and decodes like a photo.
    static func syntheticPhoto(width: Int, height: Int) -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        var seed: UInt32 = 12345
        for y in 0..<height {
            for x in 0..<width {
                seed = seed &* 1_664_525 &+ 1_013_904_223
                let noise = Double(seed >> 27) - 16
                let wave = 60 * sin(Double(x) / 37) * cos(Double(y) / 23)
                let block = (x / 128 + y / 96) % 3 == 0 ? 50.0 : 0
                let i = (y * width + x) * 3
                pixels[i] = UInt8(clamping: Int(Double(x * 200 / width) + wave + noise + 30))
                pixels[i + 1] = UInt8(clamping: Int(Double(y * 200 / height) - wave + block + noise + 20))
                pixels[i + 2] = UInt8(clamping: Int(128 + wave + block + noise))
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}
