import Foundation
import Testing
@testable import VoCoImage

@Suite struct PreprocessTests {
    private func decoded(_ name: String) throws -> RGBImage { try ImageFile.load(path: Fixtures.image(name)).image }

    /// pad and crop at 32 pixels for every fixture, against CLIPImageProcessorPil (before
    /// rescale and normalise). Bound reached: exact (0 of 255).
    @Test(arguments: Fixtures.imageNames)
    func matchesTheProcessorAt32(_ name: String) throws {
        let config = try Fixtures.config("clip32")
        for mode in [AspectRatioMode.pad, .crop] {
            let actual = try ImagePreprocessor(config: config, mode: mode).resampled(try decoded(name))
            let expected = try Fixtures.expectedImage("\(mode.rawValue)/clip32/\(name)")
            #expect(maxDifference(actual, expected) == 0, "\(mode) \(name)")
        }
    }

    @Test func matchesTheProcessorAt336() throws {
        let config = try Fixtures.config("clip336")
        for (name, mode) in [("jpeg_baseline_420.jpg", AspectRatioMode.crop), ("png_rgba8.png", .pad)] {
            let actual = try ImagePreprocessor(config: config, mode: mode).resampled(try decoded(name))
            let expected = try Fixtures.expectedImage("\(mode.rawValue)/clip336/\(name)")
            #expect(actual.width == 336 && actual.height == 336)
            #expect(maxDifference(actual, expected) == 0, "\(mode) \(name)")
        }
    }

    /// Every supported filter, an exact-size resize with a larger zero-padded crop, and a bare-int size.
    @Test(arguments: ["odd", "int_size", "filter1", "filter2", "filter4", "filter5"])
    func matchesOtherConfigs(_ config: String) throws {
        let processor = ImagePreprocessor(config: try Fixtures.config(config), mode: .crop)
        for name in ["jpeg_large.jpg", "png_gray_alpha8.png"] {
            let expected = try Fixtures.expectedImage("crop/\(config)/\(name)")
            #expect(maxDifference(try processor.resampled(try decoded(name)), expected) == 0, "\(config) \(name)")
        }
    }

    /// Pillow 13's two pass orders: tall images shrink vertically first (the 77x201 interlaced
    /// PNG cropped to 24 differed by 2/255 on 149 values when we always went horizontal first),
    /// the 36x64 boundary stays horizontal first, and an exact size far flatter than the image
    /// goes vertical first even on a padded square (background columns included).
    @Test(arguments: ["clip24", "exact_wide"])
    func matchesPillowsPassOrder(_ config: String) throws {
        var names = ["png_interlaced_tall_77x201.png", "jpeg_tall_60x400.jpg", "png_boundary_36x64.png", "jpeg_large.jpg"]
        if config == "exact_wide" { names += ["png_rgb8.png", "png_palette_trns.png"] }
        for name in names {
            for mode in [AspectRatioMode.pad, .crop] {
                let actual = try ImagePreprocessor(config: try Fixtures.config(config), mode: mode).resampled(try decoded(name))
                let expected = try Fixtures.expectedImage("\(mode.rawValue)/\(config)/\(name)")
                #expect(maxDifference(actual, expected) == 0, "\(config) \(mode) \(name)")
            }
        }
    }

    @Test func passOrderFollowsPillowsRule() {
        // ImagingResampleInner: vertical first iff rows lost > 0 and > 2 x columns lost.
        #expect(Canvas.verticalFirst(width: 77, height: 201, outWidth: 24, outHeight: 62))
        #expect(!Canvas.verticalFirst(width: 36, height: 64, outWidth: 32, outHeight: 56))  // 8 == 2 x 4
        #expect(Canvas.verticalFirst(width: 36, height: 65, outWidth: 32, outHeight: 56))
        #expect(Canvas.verticalFirst(width: 20, height: 300, outWidth: 40, outHeight: 30))  // width grows
        #expect(!Canvas.verticalFirst(width: 200, height: 150, outWidth: 42, outHeight: 32))
        #expect(!Canvas.verticalFirst(width: 10, height: 10, outWidth: 20, outHeight: 20))
    }

    /// The float tensor the model sees: rescale and normalise with numpy's float arithmetic. Exact.
    @Test(arguments: [("clip32", "jpeg_baseline_420.jpg", AspectRatioMode.pad), ("clip32", "png_palette4.png", .crop),
                      ("odd", "jpeg_large.jpg", .crop), ("int_size", "png_gray8.png", .pad),
                      ("clip24", "png_interlaced_tall_77x201.png", .crop), ("clip32", "png_palette_trns.png", .crop)])
    func normalisedValuesMatch(_ config: String, _ name: String, _ mode: AspectRatioMode) throws {
        let tensor = try ImagePreprocessor(config: try Fixtures.config(config), mode: mode).tensor(try decoded(name))
        let expected = try Fixtures.expectedValues("values/\(mode.rawValue)/\(config)/\(name)")
        #expect(expected.shape == [3, tensor.height, tensor.width])
        let worst = zip(tensor.values, expected.values).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst == 0, "\(config) \(name): max |difference| \(worst)")
    }

    // MARK: - Steps

    @Test func shortestEdgeSizeTruncatesLikeTransformers() {
        let p = ImagePreprocessor(config: PreprocessorConfig(), mode: .crop)  // shortest_edge 224
        #expect(p.outputSize(height: 768, width: 1024) == (224, 298))  // int(224 * 1024 / 768) = 298
        #expect(p.outputSize(height: 1000, width: 3) == (74666, 224))
        #expect(p.outputSize(height: 50, width: 50) == (224, 224))
    }

    @Test func padBackgroundTruncatesTheMeanTimes255() {
        let p = ImagePreprocessor(config: PreprocessorConfig(), mode: .pad)
        #expect(p.padBackground == (122, 116, 104))
    }

    @Test func centerCropOffsetsAndPadding() throws {
        let image = RGBImage(width: 5, height: 4, pixels: (0..<20).flatMap { [UInt8($0), 0, 0] })
        func cropped(height: Int, width: Int, mode: AspectRatioMode = .crop) throws -> [[UInt8]] {
            var config = PreprocessorConfig()
            config.doResize = false
            config.cropSize = (height, width)
            let r = try ImagePreprocessor(config: config, mode: mode).resampled(image)
            return (0..<r.height).map { y in (0..<r.width).map { x in r.pixels[(y * r.width + x) * 3] } }
        }
        // top = (4 - 3) // 2 = 0, left = (5 - 2) // 2 = 1
        #expect(try cropped(height: 3, width: 2) == [[1, 2], [6, 7], [11, 12]])
        // 3 more rows than the image: ceil(3 / 2) = 2 rows of zeros above, 1 below; width kept.
        #expect(try cropped(height: 7, width: 5) == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, 2, 3, 4], [5, 6, 7, 8, 9],
                                                   [10, 11, 12, 13, 14], [15, 16, 17, 18, 19], [0, 0, 0, 0, 0]])
        // Pad first: a 5x5 square, the image at row (5 - 4) // 2 = 0 over a row of the pad colour
        // (122 in red), then crop 3x3 from (1, 1).
        #expect(try cropped(height: 3, width: 3, mode: .pad) == [[6, 7, 8], [11, 12, 13], [16, 17, 18]])
        #expect(try cropped(height: 5, width: 5, mode: .pad)[4] == [122, 122, 122, 122, 122])
    }

    /// Extreme aspect ratios: crop mode resamples only the kept window (nothing else is
    /// allocated); pad mode never allocates the square and skips columns of pure background, and
    /// refuses only what would still take too long.
    @Test func extremeAspectRatios() throws {
        var config = PreprocessorConfig()
        config.size = .shortestEdge(336)
        config.cropSize = (336, 336)
        let sliver = RGBImage(width: 2, height: 60_000, fill: (10, 200, 30))
        let cropped = try ImagePreprocessor(config: config, mode: .crop).resampled(sliver)
        #expect(cropped.width == 336 && cropped.height == 336)
        #expect(cropped.pixels == RGBImage(width: 336, height: 336, fill: (10, 200, 30)).pixels)
        let padded = try ImagePreprocessor(config: config, mode: .pad).resampled(sliver)
        let middle = (168 * 336 + 168) * 3, corner = 0
        #expect(padded.pixels[corner..<(corner + 3)] == [122, 116, 104] && padded.pixels[middle] != 122)
        let thread = RGBImage(width: 1, height: 3_000_000, fill: (0, 0, 0))
        #expect(throws: ImageError.self) { try ImagePreprocessor(config: config, mode: .pad).resampled(thread, source: "thread.png") }
    }

    /// libFuzzer's first finding (a timeout): 260 bytes of JPEG that decode to 214x16668. Padded
    /// to a square, only the output columns that reach the image may cost full kernels.
    @Test func tallImagePaddedCostsOnlyItsColumns() throws {
        let path = Fixtures.directory.appendingPathComponent("fuzz/tall-214x16668.jpg").path
        let image = try ImageFile.load(path: path).image
        #expect(image.width == 214 && image.height == 16668)
        let side = 16668, x = (side - 214) / 2
        let canvas = Canvas(image, width: side, height: side, x: x, y: 0, background: (122, 116, 104))
        let work = canvas.work(width: 336, height: 336, rows: 0..<336, columns: 0..<336, filter: .bicubic)
        #expect(work.horizontal < 100_000_000, "\(work.horizontal) multiply-adds in the horizontal pass")
        let input = try ImagePreprocessor(config: try Fixtures.config("clip336"), mode: .pad).resampled(image, source: path)
        #expect(input.width == 336 && input.pixels[0..<3] == [122, 116, 104])
    }

    // MARK: - Configuration

    @Test func readsModelDirectories() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("voco-image-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(#"{"crop_size": 336, "size": {"shortest_edge": 336}}"#.utf8).write(to: dir.appendingPathComponent("preprocessor_config.json"))
        #expect(try ImagePreprocessor(modelDirectory: dir.path).mode == .crop)  // no config.json
        try Data(#"{"image_aspect_ratio": "pad", "hidden_size": 8}"#.utf8).write(to: dir.appendingPathComponent("config.json"))
        let p = try ImagePreprocessor(modelDirectory: dir.path)
        #expect(p.mode == .pad && p.config.size == .shortestEdge(336) && p.config.cropSize == (336, 336))
        #expect(p.config.imageMean == PreprocessorConfig().imageMean)
        #expect(try ImagePreprocessor(modelDirectory: dir.path, mode: .crop).mode == .crop)
        try Data(#"{"image_aspect_ratio": "square"}"#.utf8).write(to: dir.appendingPathComponent("config.json"))
        #expect(try ImagePreprocessor(modelDirectory: dir.path).mode == .crop)
    }

    @Test func refusesWhatItCannotDo() {
        func error(_ json: String) -> ImageError? {
            do { _ = try PreprocessorConfig(json: Data(json.utf8), source: "p.json"); return nil } catch { return error as? ImageError }
        }
        #expect(error(#"{"resample": 0}"#) == .unsupportedConfig(source: "p.json", field: "resample", value: "0", supported: "1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING"))
        #expect(error(#"{"resample": 7}"#) != nil)
        if case .unsupportedConfig(_, "size", _, _)? = error(#"{"size": {"shortest_edge": 224, "longest_edge": 448}}"#) {} else {
            Issue.record("shortest_edge + longest_edge should be unsupported")
        }
        #expect(error(#"{"image_mean": [0.5, 0.5]}"#) != nil)
        #expect(error(#"{"image_std": [1, 0, 1]}"#) != nil)
        #expect(error(#"{"do_resize": 1}"#) != nil)
        #expect(error(#"{"crop_size": {"height": 0, "width": 3}}"#) != nil)
        #expect(error("not json") != nil)
        #expect(error(#"{"size": 2.5}"#) != nil)
        #expect(error(#"{"do_resize": null, "size": 300}"#) == nil)
    }
}
