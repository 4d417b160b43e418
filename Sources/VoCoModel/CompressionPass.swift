import Foundation
import VoCoCompute

// MARK: - The compression pass (once per image)

/// Everything the compression pass computes for a batch of images.
public struct CompressionResult: Sendable {
    /// `[images][featureCount][mmHidden]`, the selected vision features.
    public var features: [Float]
    /// `[images][featureCount][hidden]`, the projector's output.
    public var projected: [Float]
    public var caches: [VoCoCache]
}

extension VoCoEngine {
    /// Rows of one image's compression sequence and the range the cache keeps.
    public func compressionLayout(mode: VoCoMode) -> (length: Int, kept: Range<Int>)? {
        guard let vision else { return nil }
        let head = 1 + settings.compressionPrefixIds.count, patches = vision.featureCount
        switch mode {
        case .voco: return (head + patches + settings.numTokens, (head + patches)..<(head + patches + settings.numTokens))
        case .full: return (head + patches, 0..<(head + patches))
        case .avgpool: return (head + 1, head..<(head + 1))
        }
    }

    /// Runs the compression pass over `images` preprocessed images (`pixels`:
    /// `[images][3][imageSize][imageSize]`). Each image is its own sequence
    /// `[BOS][prefix][patches][<voco> x k]` (or the `full`/`avgpool` variants) at positions 0...;
    /// every linear layer is one GEMM over all rows of all images.
    public func compress(pixels: [Float], images: Int, mode: VoCoMode? = nil) throws -> CompressionResult {
        guard let vision, let projector else { throw ModelError.noVisionTower(path: directory) }
        let mode = mode ?? settings.mode
        let size = vision.config.imageSize
        guard images >= 0, pixels.count == images * 3 * size * size else {
            throw ModelError.inputShape(what: "pixel_values", expected: [images, 3, size, size], actual: [pixels.count])
        }
        let c = text, h = c.hiddenSize, kw = c.kvWidth
        guard let bos = c.bosTokenId else {
            throw ModelError.invalidArgument("\(directory)/config.json has no bos_token_id; the compression pass starts with BOS")
        }
        var ids = [bos] + settings.compressionPrefixIds
        if mode == .voco { ids.append(settings.tokenId) }
        for id in ids where !(0..<c.vocabSize).contains(id) { throw ModelError.tokenOutOfRange(token: id, vocabularySize: c.vocabSize) }
        guard images > 0, let (length, kept) = compressionLayout(mode: mode) else {
            return CompressionResult(features: [], projected: [], caches: [])
        }
        // The model's own mode is checked at load (checkPasses); another mode asked for here is checked now.
        guard kept.upperBound < c.maxPositionEmbeddings else {
            throw ModelError.exceedsContext(needed: kept.upperBound + 1, context: c.maxPositionEmbeddings)
        }
        lock.lock()
        defer { lock.unlock() }

        // Vision tower and projector: one batch.
        let featureCount = vision.featureCount
        let features = pixels.withUnsafeBufferPointer { vision.features(pixels: $0.baseAddress!, images: images, compute: compute) }
        var projected = [Float](repeating: 0, count: images * featureCount * h)  // [images][featureCount][hidden]
        projected.withUnsafeMutableBufferPointer { out in
            features.withUnsafeBufferPointer { projector.project($0.baseAddress!, rows: images * featureCount, into: out.baseAddress!, compute: compute) }
        }

        // Input embeddings: [images][length][hidden].
        let x = UnsafeMutablePointer<Float>.allocate(capacity: images * length * h)
        defer { x.deallocate() }
        let head = 1 + settings.compressionPrefixIds.count
        projected.withUnsafeBufferPointer { projectedRows in
            for image in 0..<images {
                let seq = x + image * length * h
                for (i, id) in ([bos] + settings.compressionPrefixIds).enumerated() { language.embed(id, into: seq + i * h) }
                let patches = projectedRows.baseAddress! + image * featureCount * h  // [featureCount][hidden]
                switch mode {
                case .voco, .full:
                    (seq + head * h).update(from: patches, count: featureCount * h)
                    if mode == .voco {
                        for j in 0..<settings.numTokens { language.embed(settings.tokenId, into: seq + (head + featureCount + j) * h) }
                    }
                case .avgpool:
                    let mean = seq + head * h
                    mean.update(repeating: 0, count: h)
                    for p in 0..<featureCount { Kernels.add(patches + p * h, to: mean, count: h) }
                    for i in 0..<h { mean[i] /= Float(featureCount) }
                }
            }
        }

        // Language model: keep K (before RoPE) and V of the kept rows of every layer.
        let layers = c.numHiddenLayers, rows = kept.count
        var keys = [[Float]](repeating: [Float](repeating: 0, count: layers * rows * kw), count: images)
        var values = keys
        let cache = KVCache(layers: 1, sequences: images, capacity: length, width: kw)
        language.forward(x, sequences: images, length: length, firstPosition: 0, cache: cache,
                         workspace: LlamaWorkspace(), compute: compute,
                         observe: { layer, k, v in
                             for image in 0..<images {
                                 let from = (image * length + kept.lowerBound) * kw, to = layer * rows * kw
                                 keys[image].withUnsafeMutableBufferPointer { ($0.baseAddress! + to).update(from: k + from, count: rows * kw) }
                                 values[image].withUnsafeMutableBufferPointer { ($0.baseAddress! + to).update(from: v + from, count: rows * kw) }
                             }
                         },
                         keysAndValuesOnlyInLastLayer: true)
        for image in 0..<images where !(keys[image].allFinite && values[image].allFinite) {
            throw ModelError.nonFinite(directory: directory, what: "the cache of image \(image) of the batch (compression pass)")
        }
        let caches = try (0..<images).map { image in
            try VoCoCache(mode: mode, layers: layers, rows: rows, width: kw, firstPosition: kept.lowerBound,
                          keys: keys[image], values: values[image])
        }
        return CompressionResult(features: features, projected: projected, caches: caches)
    }
}
