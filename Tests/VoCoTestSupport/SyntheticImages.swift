import Foundation
import VoCoImage
import VoCoStore

// MARK: - Small images made in the test, not committed

/// Deterministic little JPEGs: a background and one filled rectangle, colours and place from a seed.
public enum SyntheticImages {
    /// Writes `count` images named `img-00000.jpg`... into `folder`; returns their paths in order.
    @discardableResult
    public static func writeJPEGs(count: Int, to folder: String, seed: UInt64 = 1, size: Int = 48) throws -> [String] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return try (0..<count).map { i in
            let path = (folder as NSString).appendingPathComponent(String(format: "img-%05d.jpg", i))
            try Data(jpeg(seed: seed &* 1_000_003 &+ UInt64(i), size: size)).write(to: URL(fileURLWithPath: path))
            return path
        }
    }

    public static func jpeg(seed: UInt64, size: Int = 48) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        func next() -> Int { Int(truncatingIfNeeded: generator.next() >> 33) }
        let background = (UInt8(next() % 256), UInt8(next() % 256), UInt8(next() % 256))
        let colour = (UInt8(next() % 256), UInt8(next() % 256), UInt8(next() % 256))
        var image = RGBImage(width: size, height: size, fill: background)
        let x0 = next() % (size / 2), y0 = next() % (size / 2), w = 4 + next() % (size / 2), h = 4 + next() % (size / 2)
        for y in y0..<min(size, y0 + h) {
            for x in x0..<min(size, x0 + w) {
                let p = 3 * (y * size + x)
                (image.pixels[p], image.pixels[p + 1], image.pixels[p + 2]) = colour
            }
        }
        return JPEGEncoder.encode(image, quality: 90) ?? []
    }
}
