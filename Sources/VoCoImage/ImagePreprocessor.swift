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

    /// The 8-bit image the processor rescales: after padding, resizing and cropping.
    public func resampled(_ image: RGBImage) -> RGBImage {
        var image = image
        if mode == .pad { image = Self.expandToSquare(image, background: padBackground) }
        if config.doResize {
            let (h, w) = outputSize(height: image.height, width: image.width)
            image = image.resized(width: w, height: h, filter: config.resample)
        }
        if config.doCenterCrop {
            image = Self.centerCrop(image, height: config.cropSize.height, width: config.cropSize.width)
        }
        return image
    }

    /// The model input: `resampled`, then rescale and normalise per channel.
    public func tensor(_ image: RGBImage) -> PixelTensor {
        let image = resampled(image)
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
            let newLong = Int(Double(edge * long) / Double(short))
            return width <= height ? (newLong, edge) : (edge, newLong)
        }
    }

    /// LLaVA's `expand2square`: a square of the longer side filled with `background`, the image
    /// pasted at ((side - width) // 2, (side - height) // 2).
    public static func expandToSquare(_ image: RGBImage, background: (UInt8, UInt8, UInt8)) -> RGBImage {
        guard image.width != image.height else { return image }
        let side = max(image.width, image.height)
        var out = RGBImage(width: side, height: side, fill: background)
        paste(image, into: &out, x: (side - image.width) / 2, y: (side - image.height) / 2)
        return out
    }

    /// transformers' `center_crop`: offsets `(size - crop) // 2` (floor); where the image is
    /// smaller than the crop it is first centred on zeros, `ceil((crop - size) / 2)` from the top
    /// and left.
    public static func centerCrop(_ image: RGBImage, height cropH: Int, width cropW: Int) -> RGBImage {
        let padH = max(cropH - image.height, 0), padW = max(cropW - image.width, 0)
        var canvas = image
        if padH > 0 || padW > 0 {
            canvas = RGBImage(width: image.width + padW, height: image.height + padH, fill: (0, 0, 0))
            paste(image, into: &canvas, x: (padW + 1) / 2, y: (padH + 1) / 2)
        }
        // With the padding above, floor((size - crop) / 2) + ceil(pad / 2) is never negative.
        let top = floorDivide(image.height - cropH, 2) + (padH + 1) / 2
        let left = floorDivide(image.width - cropW, 2) + (padW + 1) / 2
        if top == 0 && left == 0 && cropH == canvas.height && cropW == canvas.width { return canvas }
        var out = [UInt8](repeating: 0, count: cropH * cropW * 3)  // [cropH][cropW][3]
        for y in 0..<cropH {
            let from = ((top + y) * canvas.width + left) * 3
            out.replaceSubrange((y * cropW * 3)..<((y + 1) * cropW * 3), with: canvas.pixels[from..<(from + cropW * 3)])
        }
        return RGBImage(width: cropW, height: cropH, pixels: out)
    }

    private static func paste(_ image: RGBImage, into canvas: inout RGBImage, x: Int, y: Int) {
        let rowBytes = image.width * 3
        for row in 0..<image.height {
            let to = ((y + row) * canvas.width + x) * 3
            canvas.pixels.replaceSubrange(to..<(to + rowBytes), with: image.pixels[(row * rowBytes)..<((row + 1) * rowBytes)])
        }
    }

    private static func floorDivide(_ a: Int, _ b: Int) -> Int {
        (a >= 0 ? a : a - b + 1) / b
    }
}
