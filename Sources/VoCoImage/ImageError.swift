import Foundation

/// What was wrong with which image file or configuration. Every case names the input.
public enum ImageError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case cannotRead(source: String, reason: String)
    case fileTooLarge(source: String, bytes: Int, limit: Int)
    case empty(source: String)
    /// Neither JPEG nor PNG by content (the file name is never consulted).
    case unknownFormat(source: String, leadingBytes: [UInt8])
    case truncated(source: String, format: ImageFormat, detail: String)
    case corrupt(source: String, format: ImageFormat, detail: String)
    case tooManyPixels(source: String, width: Int, height: Int, limit: Int)
    case unsupported(source: String, format: ImageFormat, detail: String)
    case outOfMemory(source: String, detail: String)
    /// The preprocessed image, or the work to make it, would exceed the limits.
    case preprocessingTooLarge(source: String, detail: String)
    case invalidConfig(source: String, field: String, problem: String)
    case unsupportedConfig(source: String, field: String, value: String, supported: String)

    public var description: String {
        switch self {
        case let .cannotRead(source, reason):
            return "\(source): cannot read image file: \(reason)"
        case let .fileTooLarge(source, bytes, limit):
            return "\(source): file of \(bytes) bytes exceeds the \(limit)-byte limit for an image file"
        case let .empty(source):
            return "\(source): empty file (0 bytes), not an image"
        case let .unknownFormat(source, leading):
            let hex = leading.map { String(format: "%02x", $0) }.joined(separator: " ")
            return "\(source): not a JPEG or PNG image (content starts with \(hex)); only JPEG and PNG are supported, whatever the file name says"
        case let .truncated(source, format, detail):
            return "\(source): truncated \(format.rawValue): the data ends before the image does (\(detail)); the file is incomplete"
        case let .corrupt(source, format, detail):
            return "\(source): corrupt \(format.rawValue) data: \(detail)"
        case let .tooManyPixels(source, width, height, limit):
            return "\(source): image of \(width)x\(height) = \(width * height) pixels exceeds the limit of \(limit) pixels; shrink it first or raise the limit"
        case let .unsupported(source, format, detail):
            return "\(source): unsupported \(format.rawValue) variant: \(detail)"
        case let .outOfMemory(source, detail):
            return "\(source): out of memory while decoding: \(detail)"
        case let .preprocessingTooLarge(source, detail):
            return "\(source): cannot preprocess this image: \(detail)"
        case let .invalidConfig(source, field, problem):
            return "\(source): field '\(field)': \(problem)"
        case let .unsupportedConfig(source, field, value, supported):
            return "\(source): field '\(field)' = \(value) is not supported (supported: \(supported))"
        }
    }

    public var errorDescription: String? { description }
}
