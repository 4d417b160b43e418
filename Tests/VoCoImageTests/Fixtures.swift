import Foundation
import SafeTensors
@testable import VoCoImage

/// The committed fixtures of Tools/fixtures/make_image_fixtures.py.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func image(_ name: String) -> String { directory.appendingPathComponent("images/\(name)").path }
    static func broken(_ name: String) -> String { directory.appendingPathComponent("broken/\(name)").path }
    static func config(_ name: String) throws -> PreprocessorConfig {
        try PreprocessorConfig(contentsOf: directory.appendingPathComponent("configs/\(name).json").path)
    }

    static var imageNames: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("images").path)) ?? []).sorted()
    }

    static let expected: SafeTensorsFile? = try? SafeTensorsFile(path: directory.appendingPathComponent("expected.safetensors").path)

    /// An expected 8-bit image stored as [H][W][3] U8.
    static func expectedImage(_ key: String) throws -> RGBImage {
        guard let file = expected else { throw FixtureMissing(what: "expected.safetensors") }
        let t = try file.tensor(key)
        return RGBImage(width: t.shape[1], height: t.shape[0], pixels: Array(t.bytes))
    }

    static func expectedValues(_ key: String) throws -> (shape: [Int], values: [Float]) {
        guard let file = expected else { throw FixtureMissing(what: "expected.safetensors") }
        let t = try file.tensor(key)
        return (t.shape, t.floats())
    }

    static var sha256: [String: String] {
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent("sha256.json").path),
              let dict = try? JSONDecoder().decode([String: String].self, from: data) else { return [:] }
        return dict
    }
}

struct FixtureMissing: Error { let what: String }

/// The largest per-sample difference, or nil when the shapes differ.
func maxDifference(_ a: RGBImage, _ b: RGBImage) -> Int? {
    guard a.width == b.width, a.height == b.height else { return nil }
    return zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
}
