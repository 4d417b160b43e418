import CImageShims

// MARK: - Limits

/// What a file may ask of us before we refuse it.
public struct ImageLimits: Sendable, Equatable {
    /// Width x height, checked from the header before any pixel memory is allocated.
    public var maximumPixels: Int
    /// File size, checked before the file is read.
    public var maximumFileBytes: Int

    public static let `default` = ImageLimits(maximumPixels: 64_000_000, maximumFileBytes: 512 << 20)

    public init(maximumPixels: Int = 64_000_000, maximumFileBytes: Int = 512 << 20) {
        self.maximumPixels = maximumPixels
        self.maximumFileBytes = maximumFileBytes
    }
}

// MARK: - Decoding

/// A decoded image, upright, in RGB.
public struct DecodedImage: Sendable {
    public let image: RGBImage
    public let format: ImageFormat
    /// The EXIF orientation that was applied (1 = none).
    public let orientation: Int
}

/// Decodes JPEG and PNG bytes to upright RGB as Pillow's `Image.open(f)`,
/// `ImageOps.exif_transpose` and transformers 5's `convert_to_rgb` (transparency composited
/// onto white) do, with deliberate exceptions (docs/images.md): 16-bit grayscale PNG keeps its
/// high byte where Pillow clips to 255, and damaged data is an error where libjpeg would fill in grey.
public enum ImageDecoder {
    /// `source` names the input in errors (a path, or any label).
    public static func decode(_ bytes: UnsafeRawBufferPointer, source: String, limits: ImageLimits = .default) throws -> DecodedImage {
        guard let base = bytes.baseAddress, bytes.count > 0 else { throw ImageError.empty(source: source) }
        guard let format = ImageFormat.detect(bytes) else {
            throw ImageError.unknownFormat(source: source, leadingBytes: Array(bytes.prefix(8)))
        }
        var result = voco_image_result()
        let maxPixels = UInt64(max(0, limits.maximumPixels))
        let status: Int32
        switch format {
        case .jpeg: status = voco_jpeg_decode_rgb(base.assumingMemoryBound(to: UInt8.self), bytes.count, maxPixels, &result)
        case .png: status = voco_png_decode_rgb(base.assumingMemoryBound(to: UInt8.self), bytes.count, maxPixels, &result)
        }
        let detail = withUnsafeBytes(of: &result.message) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        switch status {
        case Int32(VOCO_IMAGE_OK.rawValue):
            break
        case Int32(VOCO_IMAGE_TRUNCATED.rawValue):
            throw ImageError.truncated(source: source, format: format, detail: detail)
        case Int32(VOCO_IMAGE_TOO_LARGE.rawValue):
            throw ImageError.tooManyPixels(source: source, width: Int(result.width), height: Int(result.height), limit: limits.maximumPixels)
        case Int32(VOCO_IMAGE_UNSUPPORTED.rawValue):
            throw ImageError.unsupported(source: source, format: format, detail: detail)
        case Int32(VOCO_IMAGE_OUT_OF_MEMORY.rawValue):
            throw ImageError.outOfMemory(source: source, detail: detail)
        default:
            throw ImageError.corrupt(source: source, format: format, detail: detail)
        }
        defer { voco_image_free(result.pixels) }
        let width = Int(result.width), height = Int(result.height)
        guard let pixels = result.pixels else { throw ImageError.outOfMemory(source: source, detail: "no pixels returned") }
        let image = RGBImage(width: width, height: height, pixels: Array(UnsafeBufferPointer(start: pixels, count: width * height * 3)))
        let orientation = Orientation.value(of: ImageMetadata.read(bytes, format: format))
        return DecodedImage(image: image.oriented(orientation), format: format, orientation: orientation)
    }

    public static func decode(_ bytes: [UInt8], source: String, limits: ImageLimits = .default) throws -> DecodedImage {
        try bytes.withUnsafeBytes { try decode($0, source: source, limits: limits) }
    }
}
