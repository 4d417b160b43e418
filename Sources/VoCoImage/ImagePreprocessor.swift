import Foundation

/// The model input for one image: rescaled and normalised RGB planes.
public struct PixelTensor: Sendable, Equatable {
    public let height: Int
    public let width: Int
    /// [3][height][width]
    public var values: [Float]
}

/// Turns a decoded image into the vision tower's input exactly as LLaVA's reference does:
/// `expand2square` (pad mode), then transformers' CLIPImageProcessor on the Pillow backend:
/// resize (Pillow filter), centre crop, rescale, normalise.
public struct ImagePreprocessor: Sendable {
    public let config: PreprocessorConfig
    public let mode: AspectRatioMode

    public init(config: PreprocessorConfig, mode: AspectRatioMode) {
        self.config = config
        self.mode = mode
    }

    /// Reads `preprocessor_config.json` and, when present, `config.json`'s `image_aspect_ratio`
    /// from a model directory. `mode` overrides config.json.
    public init(modelDirectory: String, mode: AspectRatioMode? = nil) throws {
        let directory = URL(fileURLWithPath: modelDirectory)
        let config = try PreprocessorConfig(contentsOf: directory.appendingPathComponent("preprocessor_config.json").path)
        let modelConfig = directory.appendingPathComponent("config.json").path
        let resolved = try mode ?? (FileManager.default.fileExists(atPath: modelConfig)
            ? AspectRatioMode(modelConfig: modelConfig) : .crop)
        self.init(config: config, mode: resolved)
    }

    // MARK: - Pipeline

    /// Multiply-adds (per pixel and tap) one image's resampling may cost, about a second: far
    /// above any photo (a 64 MP one padded to 336 needs about 0.3e9), refusing only absurd
    /// aspect ratios such as 1x3000000 padded to a square.
    public var maximumResampleWork = 2_000_000_000
    /// Pixels the output and the intermediate rows may have, and weights the filter tables.
    public static let maximumPixels = ImageLimits.default.maximumPixels

    /// The 8-bit image the processor rescales: after padding, resizing and cropping. Computed as
    /// one window of the resized canvas: the padded square and the uncropped resize are never
    /// allocated, and exactly the pixels the crop keeps are resampled.
    public func resampled(_ image: RGBImage, source: String = "image") throws -> RGBImage {
        var canvas = Canvas(image)
        if mode == .pad && image.width != image.height {
            // LLaVA's expand2square: pasted at ((side - width) // 2, (side - height) // 2).
            let side = max(image.width, image.height)
            canvas = Canvas(image, width: side, height: side, x: (side - image.width) / 2, y: (side - image.height) / 2,
                            background: padBackground)
        }
        let target = config.doResize ? outputSize(height: canvas.height, width: canvas.width) : (height: canvas.height, width: canvas.width)
        var rows = 0..<target.height, columns = 0..<target.width
        var outH = target.height, outW = target.width, top = 0, left = 0
        if config.doCenterCrop {
            (rows, top) = Self.cropWindow(size: target.height, crop: config.cropSize.height)
            (columns, left) = Self.cropWindow(size: target.width, crop: config.cropSize.width)
            (outH, outW) = config.cropSize
        }
        let work = canvas.work(width: target.width, height: target.height, rows: rows, columns: columns, filter: config.resample)
        guard saturatingProduct(outH, outW) <= Self.maximumPixels, work.intermediatePixels <= Self.maximumPixels,
              work.coefficients <= Self.maximumPixels else {
            throw ImageError.preprocessingTooLarge(source: source, detail: "a \(image.width)x\(image.height) image gives a \(outW)x\(outH) input (\(work.intermediatePixels) intermediate pixels, \(work.coefficients) filter weights); the limit is \(Self.maximumPixels) of each")
        }
        let total = saturatingSum(work.horizontal, work.vertical)
        guard total <= maximumResampleWork else {
            throw ImageError.preprocessingTooLarge(source: source, detail: "resampling \(canvas.width)x\(canvas.height) to \(target.width)x\(target.height) would take \(total == Int.max ? "too many" : "\(total)") multiply-adds (limit \(maximumResampleWork)); the aspect ratio is too extreme")
        }
        let window = canvas.resampled(width: target.width, height: target.height, rows: rows, columns: columns, filter: config.resample)
        if window.width == outW && window.height == outH { return window }
        // transformers' center_crop of a smaller image: centred on zeros.
        var out = RGBImage(width: outW, height: outH, fill: (0, 0, 0))
        for r in 0..<window.height {
            let to = ((top + r) * outW + left) * 3
            out.pixels.replaceSubrange(to..<(to + window.width * 3), with: window.pixels[(r * window.width * 3)..<((r + 1) * window.width * 3)])
        }
        return out
    }

    /// The model input: `resampled`, then rescale and normalise per channel.
    public func tensor(_ image: RGBImage, source: String = "image") throws -> PixelTensor {
        let image = try resampled(image, source: source)
        let plane = image.width * image.height
        var values = [Float](repeating: 0, count: 3 * plane)  // [3][H][W]
        let tables = (0..<3).map(valueTable)
        image.pixels.withUnsafeBufferPointer { src in
            values.withUnsafeMutableBufferPointer { dst in
                for c in 0..<3 {
                    tables[c].withUnsafeBufferPointer { table in
                        for i in 0..<plane { dst[c * plane + i] = table[Int(src[3 * i + c])] }
                    }
                }
            }
        }
        return PixelTensor(height: image.height, width: image.width, values: values)
    }

    /// Channel `c`'s output for each 8-bit value, with numpy's arithmetic: rescale in float64
    /// then round to float32; normalise in float32.
    func valueTable(_ c: Int) -> [Float] {
        let mean = Float(config.imageMean[c]), std = Float(config.imageStd[c])
        return (0..<256).map { v in
            var x = config.doRescale ? Float(Double(v) * config.rescaleFactor) : Float(v)
            if config.doNormalize { x = (x - mean) / std }
            return x
        }
    }

    // MARK: - Steps

    /// LLaVA's `tuple(int(x * 255) for x in image_mean)`.
    public var padBackground: (UInt8, UInt8, UInt8) {
        let c = config.imageMean.map { UInt8(clamping: Int(max(0, min(255, $0 * 255)))) }
        return (c[0], c[1], c[2])
    }

    /// (height, width) after the resize step, as transformers computes it.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        switch config.size {
        case let .exact(h, w):
            return (h, w)
        case let .shortestEdge(edge):
            // get_resize_output_image_size(default_to_square=False): int(size * long / short).
            let (short, long) = width <= height ? (width, height) : (height, width)
            let newLong = Int(Double(edge) * Double(long) / Double(short))
            return width <= height ? (newLong, edge) : (edge, newLong)
        }
    }

    /// transformers' `center_crop` along one axis: the kept part of `0..<size` and where it
    /// lands in the crop. A larger axis keeps `(size - crop) // 2 ..< + crop`; a smaller one is
    /// kept whole, centred on zeros `ceil((crop - size) / 2)` from the start.
    static func cropWindow(size: Int, crop: Int) -> (Range<Int>, Int) {
        size >= crop ? (((size - crop) / 2)..<((size - crop) / 2 + crop), 0) : (0..<size, (crop - size + 1) / 2)
    }
}
