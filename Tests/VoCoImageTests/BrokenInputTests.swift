import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VoCoImage

@Suite struct BrokenInputTests {
    private func error(loading name: String, limits: ImageLimits = .default) -> ImageError? {
        do {
            _ = try ImageFile.load(path: Fixtures.broken(name), limits: limits)
            return nil
        } catch let error as ImageError {
            return error
        } catch {
            return nil
        }
    }

    @Test func truncatedJPEGIsAnErrorNotGreyPadding() {
        guard case let .truncated(source, format, _)? = error(loading: "truncated.jpg") else {
            Issue.record("expected .truncated, got \(String(describing: error(loading: "truncated.jpg")))")
            return
        }
        #expect(source.hasSuffix("truncated.jpg") && format == .jpeg)
        #expect(error(loading: "truncated.jpg")?.description.contains("truncated.jpg") == true)
    }

    @Test func truncatedProgressiveJPEG() {
        guard case .truncated(_, .jpeg, _)? = error(loading: "truncated_progressive.jpg") else {
            Issue.record("got \(String(describing: error(loading: "truncated_progressive.jpg")))")
            return
        }
    }

    @Test func truncatedPNG() {
        guard case .truncated(_, .png, _)? = error(loading: "truncated.png") else {
            Issue.record("got \(String(describing: error(loading: "truncated.png")))")
            return
        }
    }

    @Test func emptyFile() {
        #expect(error(loading: "empty.jpg") == .empty(source: Fixtures.broken("empty.jpg")))
    }

    @Test func textFileNamedJPEG() {
        guard case let .unknownFormat(_, leading)? = error(loading: "text.jpg") else {
            Issue.record("got \(String(describing: error(loading: "text.jpg")))")
            return
        }
        #expect(leading == Array("This is ".utf8))
    }

    @Test func badCRCs() {
        for name in ["bad_crc.png", "bad_idat_crc.png"] {
            guard case let .corrupt(_, .png, detail)? = error(loading: name) else {
                Issue.record("\(name): got \(String(describing: error(loading: name)))")
                continue
            }
            #expect(detail.contains("CRC"), "\(name): \(detail)")
        }
    }

    /// JPEG cannot declare more than 65500 (libjpeg's limit) a side; 65500^2 is 4.3 gigapixels.
    @Test func hugeHeadersAreRefusedBeforeAllocating() {
        #expect(error(loading: "huge_header.jpg") == .tooManyPixels(source: Fixtures.broken("huge_header.jpg"), width: 65500, height: 65500, limit: 64_000_000))
        #expect(error(loading: "huge_header.png") == .tooManyPixels(source: Fixtures.broken("huge_header.png"), width: 100000, height: 100000, limit: 64_000_000))
    }

    @Test func pixelLimitIsConfigurable() throws {
        let path = Fixtures.image("jpeg_large.jpg")  // 200x150
        #expect(throws: ImageError.tooManyPixels(source: path, width: 200, height: 150, limit: 29_999)) {
            try ImageFile.load(path: path, limits: ImageLimits(maximumPixels: 29_999))
        }
        #expect(try ImageFile.load(path: path, limits: ImageLimits(maximumPixels: 30_000)).image.width == 200)
        #expect(throws: ImageError.fileTooLarge(source: path, bytes: 10794, limit: 1000)) {
            try ImageFile.load(path: path, limits: ImageLimits(maximumFileBytes: 1000))
        }
    }

    @Test func corruptEntropyDataIsAnError() {
        guard case .corrupt(_, .jpeg, _)? = error(loading: "corrupt_data.jpg") else {
            Issue.record("got \(String(describing: error(loading: "corrupt_data.jpg")))")
            return
        }
    }

    @Test func missingFileAndDirectory() {
        #expect(throws: ImageError.self) { try ImageFile.load(path: Fixtures.broken("no-such-file.png")) }
        #expect(throws: ImageError.cannotRead(source: Fixtures.directory.path, reason: "a directory, not a regular file")) {
            try ImageFile.load(path: Fixtures.directory.path)
        }
    }

    /// A FIFO is refused by its type before it is opened (opening it would wait for a writer
    /// forever), and so are devices; a preprocessor config that is a FIFO too.
    @Test func fifoAndDevicesAreRefusedWithoutBlocking() throws {
        let fifo = FileManager.default.temporaryDirectory.appendingPathComponent("voco-image-fifo-\(UUID().uuidString)").path
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        #expect(throws: ImageError.cannotRead(source: fifo, reason: "a FIFO (named pipe), not a regular file")) { try ImageFile.load(path: fifo) }
        #expect(throws: ImageError.cannotRead(source: "/dev/zero", reason: "a character device, not a regular file")) {
            try ImageFile.load(path: "/dev/zero")
        }
        #expect(throws: ImageError.cannotRead(source: fifo, reason: "a FIFO (named pipe), not a regular file")) {
            try PreprocessorConfig(contentsOf: fifo)
        }
    }

    /// A 32 MB eXIf chunk and 40 full EXIF segments: parsing stays bounded and the image decodes.
    @Test func hugeExifBlocksAreBounded() throws {
        let png = Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.image("png_rgb8.png"))))
        var exif = Array("MM\0*\0\0\0\u{8}\0\u{1}".utf8) + [0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]
        exif += [UInt8](repeating: 0xab, count: 32 << 20)
        var chunk = withUnsafeBytes(of: UInt32(exif.count).bigEndian, Array.init) + Array("eXIf".utf8) + exif
        chunk += [0, 0, 0, 0]  // the CRC of an ancillary chunk is not checked by our reader
        let bigPNG = Array(png[0..<33]) + chunk + Array(png[33...])
        let decoded = try ImageDecoder.decode(bigPNG, source: "big-exif.png")
        #expect(decoded.orientation == 6 && decoded.image.width == 29)

        let jpeg = Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.image("jpeg_baseline_420.jpg"))))
        let segment: [UInt8] = [0xff, 0xe1, 0xff, 0xff] + Array("Exif\0\0".utf8) + [UInt8](repeating: 0x4d, count: 65527)
        let bigJPEG = Array(jpeg[0..<2]) + Array(repeating: segment, count: 40).flatMap { $0 } + Array(jpeg[2...])
        let plain = try ImageDecoder.decode(bigJPEG, source: "big-exif.jpg")
        #expect(plain.orientation == 1)
        #expect(plain.image == (try Fixtures.expectedImage("decode/jpeg_baseline_420.jpg")))
    }

    /// Every prefix of a valid file is refused with an error (never a crash, never a partial image).
    @Test func everyPrefixIsRefused() throws {
        for name in ["jpeg_progressive.jpg", "png_interlaced_palette2.png"] {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.image(name))))
            var accepted: [Int] = []
            for length in 0..<bytes.count where (try? ImageDecoder.decode(Array(bytes[0..<length]), source: name)) != nil {
                accepted.append(length)
            }
            // Only the trailer may go: a JPEG's EOI marker (2 bytes), a PNG's IEND chunk (12 bytes).
            let trailer = name.hasSuffix(".jpg") ? 2 : 12
            #expect(accepted.allSatisfy { $0 >= bytes.count - trailer }, "\(name): accepted prefixes \(accepted.prefix(5))")
        }
    }
}
