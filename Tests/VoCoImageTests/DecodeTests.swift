import Foundation
import Testing
@testable import VoCoImage

@Suite struct DecodeTests {
    @Test func fixturesArePresent() {
        #expect(Fixtures.imageNames.count >= 38)
        #expect(Fixtures.expected != nil)
    }

    /// Every variant decodes to exactly what Pillow's open + exif_transpose + convert("RGB")
    /// gives (16-bit gray: the high byte, our documented difference).
    @Test(arguments: Fixtures.imageNames)
    func decodesAsPillowDoes(_ name: String) throws {
        let loaded = try ImageFile.load(path: Fixtures.image(name))
        let expected = try Fixtures.expectedImage("decode/\(name)")
        #expect(loaded.image.width == expected.width && loaded.image.height == expected.height, "\(name)")
        #expect(maxDifference(loaded.image, expected) == 0, "\(name): decoded pixels differ from Pillow's")
        #expect(loaded.decoded.format == (name.hasSuffix(".jpg") ? .jpeg : .png))
    }

    @Test(arguments: Fixtures.imageNames)
    func hashesTheFileBytes(_ name: String) throws {
        let loaded = try ImageFile.load(path: Fixtures.image(name))
        #expect(loaded.sha256Hex == Fixtures.sha256[name])
        #expect(loaded.byteCount == (try Data(contentsOf: URL(fileURLWithPath: Fixtures.image(name)))).count)
    }

    @Test func readsEveryOrientation() throws {
        for o in 1...8 {
            #expect(try ImageFile.load(path: Fixtures.image("jpeg_exif_orientation_\(o).jpg")).decoded.orientation == o)
        }
        #expect(try ImageFile.load(path: Fixtures.image("jpeg_xmp_orientation.jpg")).decoded.orientation == 8)
        #expect(try ImageFile.load(path: Fixtures.image("png_exif_orientation_6.png")).decoded.orientation == 6)
        #expect(try ImageFile.load(path: Fixtures.image("png_xmp_orientation_3.png")).decoded.orientation == 3)
        #expect(try ImageFile.load(path: Fixtures.image("jpeg_exif_huge.jpg")).decoded.orientation == 6)
        #expect(try ImageFile.load(path: Fixtures.image("png_rgb8.png")).decoded.orientation == 1)
    }

    /// The format comes from the content: a PNG named .jpg is still a PNG.
    @Test func detectsTheFormatFromContent() throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.image("png_rgb8.png"))))
        let decoded = try ImageDecoder.decode(bytes, source: "looks-like.jpg")
        #expect(decoded.format == .png)
        #expect(decoded.image == (try Fixtures.expectedImage("decode/png_rgb8.png")))
    }

    @Test func orientationTransposesMatchTheirDefinitions() {
        // 3x2: pixel value = 10 * y + x in every channel.
        let values: [UInt8] = [0, 1, 2, 10, 11, 12]
        let image = RGBImage(width: 3, height: 2, pixels: values.flatMap { [$0, $0, $0] })
        func grid(_ o: Int) -> [[UInt8]] {
            let r = image.oriented(o)
            var rows: [[UInt8]] = []
            for y in 0..<r.height {
                rows.append((0..<r.width).map { (x: Int) -> UInt8 in r.pixels[(y * r.width + x) * 3] })
            }
            return rows
        }
        #expect(grid(1) == [[0, 1, 2], [10, 11, 12]])
        #expect(grid(2) == [[2, 1, 0], [12, 11, 10]])
        #expect(grid(3) == [[12, 11, 10], [2, 1, 0]])
        #expect(grid(4) == [[10, 11, 12], [0, 1, 2]])
        #expect(grid(5) == [[0, 10], [1, 11], [2, 12]])
        #expect(grid(6) == [[10, 0], [11, 1], [12, 2]])
        #expect(grid(7) == [[12, 2], [11, 1], [10, 0]])
        #expect(grid(8) == [[2, 12], [1, 11], [0, 10]])
    }
}
