import Foundation

/// What was wrong with which file or tensor. Every case names the input.
public enum SafeTensorsError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case cannotOpen(path: String, reason: String)
    case truncatedHeader(path: String, fileSize: Int)
    case headerTooLarge(path: String, headerSize: UInt64, fileSize: Int)
    case invalidHeader(path: String, reason: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case tensorOutOfBounds(path: String, tensor: String, begin: Int, end: Int, dataSize: Int)
    case sizeMismatch(path: String, tensor: String, shape: [Int], dtype: DType, byteCount: Int)
    case missingTensor(name: String, source: String)
    case shapeMismatch(tensor: String, source: String, expected: [Int], actual: [Int])
    case unsupported(String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "\(path): cannot open safetensors file: \(reason)"
        case let .truncatedHeader(path, size):
            return "\(path): truncated safetensors file: \(size) bytes is too short for the 8-byte header length"
        case let .headerTooLarge(path, header, size):
            return "\(path): safetensors header claims \(header) bytes but the file has only \(size): the file is truncated or not safetensors"
        case let .invalidHeader(path, reason):
            return "\(path): invalid safetensors header: \(reason)"
        case let .unknownDType(path, tensor, dtype):
            return "\(path): tensor '\(tensor)' has unknown dtype '\(dtype)' (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))"
        case let .tensorOutOfBounds(path, tensor, begin, end, dataSize):
            return "\(path): tensor '\(tensor)' spans bytes \(begin)..<\(end) but the data section has \(dataSize) bytes: the file is truncated or corrupt"
        case let .sizeMismatch(path, tensor, shape, dtype, byteCount):
            return "\(path): tensor '\(tensor)' of shape \(shape) and dtype \(dtype.rawValue) needs \(shape.reduce(1, *) * dtype.size) bytes but its offsets give \(byteCount)"
        case let .missingTensor(name, source):
            return "\(source): missing tensor '\(name)'"
        case let .shapeMismatch(tensor, source, expected, actual):
            return "\(source): tensor '\(tensor)' has shape \(actual), expected \(expected)"
        case let .unsupported(what):
            return "unsupported: \(what)"
        }
    }

    public var errorDescription: String? { description }
}
