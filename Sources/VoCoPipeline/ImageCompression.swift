import Foundation
import VoCoImage
import VoCoModel

// MARK: - Image files -> VoCo caches (the compression pass, once per image)

/// One image file compressed into its cache.
public struct CompressedImage: Sendable {
    /// The path the image was read from.
    public let source: String
    /// SHA-256 of the file's bytes.
    public let digest: [UInt8]
    public let width: Int
    public let height: Int
    public let format: ImageFormat
    public let cache: VoCoCache
}

extension AnsweringModel {
    /// Reads, decodes and preprocesses `paths`, then runs the compression pass over them
    /// `batchSize` images at a time (each batch one GEMM per linear layer). Identical files are
    /// compressed once. Errors name the file.
    public func compress(imagePaths paths: [String], batchSize: Int = 8, limits: ImageLimits = .default) throws -> [CompressedImage] {
        guard let preprocessor, let vision = engine.vision else { throw PipelineError.textOnlyModel(path: directory) }
        let size = vision.config.imageSize
        var results: [CompressedImage?] = Array(repeating: nil, count: paths.count)
        var firstIndexOfDigest: [[UInt8]: Int] = [:]
        var duplicates: [(index: Int, of: Int)] = []
        var batch: [(index: Int, image: LoadedImage)] = []
        var pixels: [Float] = []  // [batch][3][size][size]
        pixels.reserveCapacity(max(1, batchSize) * 3 * size * size)

        func flush() throws {
            guard !batch.isEmpty else { return }
            let result = try engine.compress(pixels: pixels, images: batch.count)
            for (slot, entry) in batch.enumerated() {
                let d = entry.image.decoded
                results[entry.index] = CompressedImage(source: entry.image.path, digest: entry.image.sha256,
                                                       width: d.image.width, height: d.image.height, format: d.format,
                                                       cache: result.caches[slot])
            }
            batch.removeAll(keepingCapacity: true)
            pixels.removeAll(keepingCapacity: true)
        }

        for (index, path) in paths.enumerated() {
            let loaded = try ImageFile.load(path: path, limits: limits)
            if let first = firstIndexOfDigest[loaded.sha256] {
                duplicates.append((index, first))
                continue
            }
            firstIndexOfDigest[loaded.sha256] = index
            let tensor = try preprocessor.tensor(loaded.image, source: path)
            guard tensor.height == size, tensor.width == size else {
                throw PipelineError.preprocessorMismatch(path: directory, image: path, produced: [tensor.height, tensor.width], towerExpects: size)
            }
            pixels.append(contentsOf: tensor.values)
            batch.append((index, loaded))
            if batch.count >= max(1, batchSize) { try flush() }
        }
        try flush()
        for (index, first) in duplicates {
            guard let original = results[first] else { continue }
            results[index] = CompressedImage(source: paths[index], digest: original.digest, width: original.width,
                                             height: original.height, format: original.format, cache: original.cache)
        }
        return results.compactMap { $0 }
    }
}
