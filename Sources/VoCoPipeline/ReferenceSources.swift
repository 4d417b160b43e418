import Foundation
import VoCoImage
import VoCoStore

// MARK: - Candidate model references, for measuring which one a store should keep

/// Where a reference measured by `voco-bench codecs --reference` comes from. `store` is what a
/// store keeps (the mean of a model's first N records, written at 8 bits; StoreReferences.swift);
/// the others are the alternatives it was measured against: caches made from the model alone
/// (no data: the same on every machine), and the exact mean of real caches.
public enum ReferenceSource: Sendable, Equatable, CustomStringConvertible {
    /// What a store keeps: the mean of the split's first `images` caches, each put through the
    /// store's 8-bit calibration record first (`CodecSettings.calibration`).
    case store(split: String, images: Int)
    /// The exact mean of the split's first `images` caches (all when nil).
    case mean(split: String, images: Int?)
    /// The compression pass over the neutral image: all pixel values 0 after normalisation
    /// (every pixel the preprocessor's mean colour).
    case neutral
    /// The mean cache of the 8 solid colours at the corners of the RGB cube.
    case colours
    /// The mean cache of 8 images of uniform noise from fixed seeds.
    case noise

    /// `store:SPLIT[:N]` (N 16 when not given), `mean:SPLIT[:N]`, `neutral`, `colours` or `noise`;
    /// nil for anything else.
    public init?(parsing spec: String) {
        switch spec {
        case "neutral": self = .neutral
        case "colours": self = .colours
        case "noise": self = .noise
        default:
            let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, ["store", "mean"].contains(parts[0]), !parts[1].isEmpty else { return nil }
            var path = parts[1], images: Int?
            if let colon = path.lastIndex(of: ":"), let n = Int(path[path.index(after: colon)...]) {
                guard n > 0, colon > path.startIndex else { return nil }
                (path, images) = (String(path[..<colon]), n)
            }
            self = parts[0] == "store" ? .store(split: path, images: images ?? CodecSettings.defaultReferenceImages)
                : .mean(split: path, images: images)
        }
    }

    public var description: String {
        switch self {
        case let .store(split, n): return "the store's (mean of \(n) 8-bit records of \((split as NSString).lastPathComponent))"
        case let .mean(split, n):
            let name = (split as NSString).lastPathComponent
            return n.map { "exact mean of \(name)'s first \($0)" } ?? "exact mean of \(name)"
        case .neutral: return "the neutral image"
        case .colours: return "mean of 8 solid colours"
        case .noise: return "mean of 8 noise images"
        }
    }

    /// The reference cache this source gives for `model`, before a store rounds it to the
    /// model's dtype. `calibration` is the store's 8-bit record round trip (for `store`).
    public func tensors(_ model: AnsweringModel, calibration: (KVTensors) throws -> KVTensors) throws -> KVTensors {
        let caches: [KVTensors]
        switch self {
        case let .store(split, n):
            caches = try Self.splitCaches(split, first: n, model: model).map(calibration)
        case let .mean(split, n):
            caches = try Self.splitCaches(split, first: n, model: model)
        case .neutral:
            guard let size = model.engine.vision?.config.imageSize else { throw PipelineError.textOnlyModel(path: model.directory) }
            caches = try Self.compress([[Float](repeating: 0, count: 3 * size * size)], model: model)  // [3][size][size]
        case .colours:
            let corners = (0..<8).map { c in RGBImage(width: 64, height: 64, fill: (c & 1 == 0 ? 0 : 255, c & 2 == 0 ? 0 : 255, c & 4 == 0 ? 0 : 255)) }
            caches = try Self.compress(try Self.pixels(corners, model: model), model: model)
        case .noise:
            let images = (0..<8).map { seed -> RGBImage in
                var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1
                let pixels = (0..<(336 * 336 * 3)).map { _ -> UInt8 in
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407  // a 64-bit LCG, top byte
                    return UInt8(truncatingIfNeeded: state >> 56)
                }
                return RGBImage(width: 336, height: 336, pixels: pixels)
            }
            caches = try Self.compress(try Self.pixels(images, model: model), model: model)
        }
        guard let mean = ModelReference.mean(caches) else {
            throw PipelineError.cacheShape(reason: "\(self): no caches of one shape to take a reference from")
        }
        return mean
    }

    private static func splitCaches(_ split: String, first n: Int?, model: AnsweringModel) throws -> [KVTensors] {
        let caches = try CodecEvaluation.caches(model, split: try EvaluationSplit(path: split)).map(\.cache)
        return try caches.prefix(n ?? caches.count).map { try model.storeTensors($0) }
    }

    private static func pixels(_ images: [RGBImage], model: AnsweringModel) throws -> [[Float]] {
        guard let preprocessor = model.preprocessor else { throw PipelineError.textOnlyModel(path: model.directory) }
        return try images.map { try preprocessor.tensor($0, source: "synthetic reference image").values }  // each [3][size][size]
    }

    /// One compression pass per image, as ingest runs them.
    private static func compress(_ pixels: [[Float]], model: AnsweringModel) throws -> [KVTensors] {
        try pixels.map { image in
            guard let cache = try model.engine.compress(pixels: image, images: 1).caches.first else {
                throw PipelineError.cacheShape(reason: "the compression pass returned no cache")
            }
            return try model.storeTensors(cache)
        }
    }
}
