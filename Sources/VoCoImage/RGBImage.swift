/// 8-bit RGB pixels, rows top to bottom, interleaved: the common currency between decoding
/// and preprocessing (Pillow's "RGB" mode).
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// [height][width][3]
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image filled with one colour.
    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8)) {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = fill.0
            pixels[3 * i + 1] = fill.1
            pixels[3 * i + 2] = fill.2
        }
        self.init(width: width, height: height, pixels: pixels)
    }
}
