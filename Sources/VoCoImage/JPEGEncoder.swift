import CImageShims

/// Encodes RGB as a 4:2:0 JPEG with libjpeg-turbo: test and benchmark inputs of any size
/// without committing large files.
public enum JPEGEncoder {
    public static func encode(_ image: RGBImage, quality: Int = 90, progressive: Bool = false) -> [UInt8]? {
        var out: UnsafeMutablePointer<UInt8>? = nil
        let count = image.pixels.withUnsafeBufferPointer { src -> Int in
            guard let base = src.baseAddress else { return 0 }
            return voco_jpeg_encode_rgb(base, UInt32(image.width), UInt32(image.height), Int32(quality), progressive ? 1 : 0, &out)
        }
        defer { voco_image_free(out) }
        guard count > 0, let out else { return nil }
        return Array(UnsafeBufferPointer(start: out, count: count))
    }
}
