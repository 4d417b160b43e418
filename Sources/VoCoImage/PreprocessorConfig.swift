import Foundation
import VoCoJSON

// MARK: - preprocessor_config.json

/// The CLIPImageProcessor settings of a model's `preprocessor_config.json`, with transformers'
/// defaults for absent fields.
public struct PreprocessorConfig: Sendable, Equatable {
    public enum Size: Sendable, Equatable {
        /// Scale so the shorter side is this long (`{"shortest_edge": n}` or a bare int).
        case shortestEdge(Int)
        /// Scale to exactly this (`{"height": h, "width": w}`).
        case exact(height: Int, width: Int)
    }

    public var doResize = true
    public var size = Size.shortestEdge(224)
    public var resample = ResampleFilter.bicubic
    public var doCenterCrop = true
    /// (height, width)
    public var cropSize = (height: 224, width: 224)
    public var doRescale = true
    public var rescaleFactor = 1.0 / 255.0
    public var doNormalize = true
    public var imageMean: [Double] = [0.48145466, 0.4578275, 0.40821073]  // OPENAI_CLIP_MEAN
    public var imageStd: [Double] = [0.26862954, 0.26130258, 0.27577711]   // OPENAI_CLIP_STD
    /// Accepted and recorded; decoded images are always RGB already.
    public var doConvertRGB = true

    public init() {}

    public static func == (a: Self, b: Self) -> Bool {
        a.doResize == b.doResize && a.size == b.size && a.resample == b.resample && a.doCenterCrop == b.doCenterCrop
            && a.cropSize == b.cropSize && a.doRescale == b.doRescale && a.rescaleFactor == b.rescaleFactor
            && a.doNormalize == b.doNormalize && a.imageMean == b.imageMean && a.imageStd == b.imageStd
            && a.doConvertRGB == b.doConvertRGB
    }

    public init(contentsOf path: String) throws {
        try self.init(json: try ImageFile.readConfig(path: path), source: path)
    }

    public init(json: Data, source: String) throws {
        guard let fields = JSONValue.object(from: json) else {
            throw ImageError.invalidConfig(source: source, field: "(file)", problem: "not a JSON object")
        }
        let reader = FieldReader(fields: fields, source: source)
        doResize = try reader.bool("do_resize") ?? doResize
        if let value = reader.value("size") { size = try reader.size(value) }
        if let code = try reader.int("resample") {
            guard let filter = ResampleFilter(rawValue: code) else {
                throw ImageError.unsupportedConfig(source: source, field: "resample", value: "\(code)",
                                                   supported: "1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING")
            }
            resample = filter
        }
        doCenterCrop = try reader.bool("do_center_crop") ?? doCenterCrop
        if let value = reader.value("crop_size") { cropSize = try reader.cropSize(value) }
        doRescale = try reader.bool("do_rescale") ?? doRescale
        rescaleFactor = try reader.double("rescale_factor") ?? rescaleFactor
        doNormalize = try reader.bool("do_normalize") ?? doNormalize
        imageMean = try reader.channels("image_mean") ?? imageMean
        imageStd = try reader.channels("image_std") ?? imageStd
        doConvertRGB = try reader.bool("do_convert_rgb") ?? doConvertRGB
        if imageStd.contains(0) {
            throw ImageError.invalidConfig(source: source, field: "image_std", problem: "contains 0: division by zero")
        }
    }
}

// MARK: - Typed field access

private struct FieldReader {
    let fields: [String: JSONValue]
    let source: String

    /// The field, or nil when absent or null (transformers' default applies).
    func value(_ name: String) -> JSONValue? {
        guard let v = fields[name], v != .null else { return nil }
        return v
    }

    private func invalid(_ field: String, _ problem: String) -> ImageError {
        .invalidConfig(source: source, field: field, problem: problem)
    }

    func bool(_ name: String) throws -> Bool? {
        guard let v = value(name) else { return nil }
        guard case let .bool(b) = v else { throw invalid(name, "expected true or false, got \(v)") }
        return b
    }

    func double(_ name: String) throws -> Double? {
        guard let v = value(name) else { return nil }
        guard case let .number(n) = v, n.isFinite else { throw invalid(name, "expected a number, got \(v)") }
        return n
    }

    func int(_ name: String) throws -> Int? {
        guard let v = value(name) else { return nil }
        return try integer(v, name)
    }

    private func integer(_ v: JSONValue, _ field: String, minimum: Int = 0) throws -> Int {
        guard case let .number(n) = v, n == n.rounded(), abs(n) < 1e9, Int(n) >= minimum else {
            throw invalid(field, "expected an integer of at least \(minimum), got \(v)")
        }
        return Int(n)
    }

    /// A bare int means the shortest edge (CLIP's `default_to_square=False`).
    func size(_ v: JSONValue) throws -> PreprocessorConfig.Size {
        guard case let .object(dict) = v else { return .shortestEdge(try integer(v, "size", minimum: 1)) }
        let keys = Set(dict.keys.filter { dict[$0] != .null })
        if keys == ["shortest_edge"], let edge = dict["shortest_edge"] {
            return .shortestEdge(try integer(edge, "size.shortest_edge", minimum: 1))
        }
        if keys == ["height", "width"], let h = dict["height"], let w = dict["width"] {
            return .exact(height: try integer(h, "size.height", minimum: 1), width: try integer(w, "size.width", minimum: 1))
        }
        throw ImageError.unsupportedConfig(source: source, field: "size", value: "\(v)",
                                           supported: "{\"shortest_edge\": n}, {\"height\": h, \"width\": w} or an int")
    }

    /// A bare int means a square.
    func cropSize(_ v: JSONValue) throws -> (height: Int, width: Int) {
        guard case let .object(dict) = v else {
            let side = try integer(v, "crop_size", minimum: 1)
            return (side, side)
        }
        guard let h = dict["height"], let w = dict["width"] else {
            throw invalid("crop_size", "expected {\"height\": h, \"width\": w} or an int, got \(v)")
        }
        return (try integer(h, "crop_size.height", minimum: 1), try integer(w, "crop_size.width", minimum: 1))
    }

    /// Three per-channel values, or one for all three.
    func channels(_ name: String) throws -> [Double]? {
        guard let v = value(name) else { return nil }
        if case let .number(n) = v { return Array(repeating: n, count: 3) }
        guard case let .array(list) = v, list.count == 3 else { throw invalid(name, "expected 3 numbers (R, G, B), got \(v)") }
        return try list.map {
            guard case let .number(n) = $0, n.isFinite else { throw invalid(name, "expected numbers, got \(v)") }
            return n
        }
    }
}

// MARK: - config.json's image_aspect_ratio

/// How an image is fitted to the square input: LLaVA-1.5's `pad` (expand to a square filled
/// with the mean colour, image centred, then the processor) or the processor alone.
public enum AspectRatioMode: String, Sendable {
    case pad
    case crop

    /// `pad` means pad; anything else (absent, `square`, ...) is the processor's own resize and crop.
    public init(imageAspectRatio: String?) {
        self = imageAspectRatio == "pad" ? .pad : .crop
    }

    /// Reads `image_aspect_ratio` from a model's config.json.
    public init(modelConfig path: String) throws {
        let data = try ImageFile.readConfig(path: path)
        guard let fields = JSONValue.object(from: data) else {
            throw ImageError.invalidConfig(source: path, field: "(file)", problem: "not a JSON object")
        }
        switch fields["image_aspect_ratio"] {
        case nil, .null?: self.init(imageAspectRatio: nil)
        case let .string(s)?: self.init(imageAspectRatio: s)
        case let other?: throw ImageError.invalidConfig(source: path, field: "image_aspect_ratio", problem: "expected a string, got \(other)")
        }
    }
}
