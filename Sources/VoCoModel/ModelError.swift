import Foundation
import SafeTensors

// MARK: - What went wrong, with which input

/// A tensor a checkpoint lacks or holds in the wrong form.
public enum WeightProblem: Equatable, Sendable, CustomStringConvertible {
    case missing(tensor: String)
    case wrongShape(tensor: String, expected: [Int], actual: [Int])
    case unsupportedDType(tensor: String, dtype: DType)

    public var description: String {
        switch self {
        case let .missing(tensor): return "missing tensor '\(tensor)'"
        case let .wrongShape(tensor, expected, actual): return "tensor '\(tensor)' has shape \(actual), expected \(expected)"
        case let .unsupportedDType(tensor, dtype): return "tensor '\(tensor)' has dtype \(dtype.rawValue); weights must be F32, F16 or BF16"
        }
    }
}

/// Errors of the model side. Every case names the file, field, tensor or argument at fault.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible, LocalizedError {
    case cannotRead(path: String, reason: String)
    case invalidJSON(path: String, reason: String)
    case missingConfigField(path: String, field: String)
    case invalidConfigValue(path: String, field: String, value: String, expected: String)
    case unsupportedConfigValue(path: String, field: String, value: String, supported: String)
    case visionTowerNotFound(path: String, reason: String)
    /// Every problem found in the checkpoint, reported together before any compute.
    case weights(directory: String, problems: [WeightProblem])
    case noVisionTower(path: String)
    case inputShape(what: String, expected: [Int], actual: [Int])
    case tokenOutOfRange(token: Int, vocabularySize: Int)
    case invalidCache(index: Int, reason: String)
    case contextFull(capacity: Int, needed: Int)
    /// Images, prompt and answer need more positions than `max_position_embeddings`.
    case exceedsContext(needed: Int, context: Int)
    /// A pass computed NaN or infinity: broken weights, or a config that does not fit them.
    case nonFinite(directory: String, what: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .cannotRead(path, reason):
            return "\(path): cannot read: \(reason)"
        case let .invalidJSON(path, reason):
            return "\(path): not a valid JSON object: \(reason)"
        case let .missingConfigField(path, field):
            return "\(path): missing field '\(field)'"
        case let .invalidConfigValue(path, field, value, expected):
            return "\(path): field '\(field)' is \(value), expected \(expected)"
        case let .unsupportedConfigValue(path, field, value, supported):
            return "\(path): field '\(field)' = \(value) is not supported (supported: \(supported))"
        case let .visionTowerNotFound(path, reason):
            return "\(path): no CLIP vision tower: \(reason). Put a 'vision_config' object in config.json with the tower's weights under 'model.vision_tower.vision_tower.vision_model.', or set 'mm_vision_tower' to a directory (relative to the model directory, or absolute) holding a CLIPVisionModel checkpoint (config.json + safetensors with 'vision_model.' names)"
        case let .weights(directory, problems):
            return "\(directory): the checkpoint does not fit config.json (\(problems.count) problem\(problems.count == 1 ? "" : "s")):\n"
                + problems.map { "  - \($0)" }.joined(separator: "\n")
        case let .noVisionTower(path):
            return "\(path): a text-only model (model_type 'llama') has no vision tower, so it cannot compress images"
        case let .inputShape(what, expected, actual):
            return "\(what) has shape \(actual), expected \(expected)"
        case let .tokenOutOfRange(token, vocabularySize):
            return "token id \(token) is outside the vocabulary (0 ..< \(vocabularySize))"
        case let .invalidCache(index, reason):
            return "cache \(index): \(reason)"
        case let .contextFull(capacity, needed):
            return "the query needs \(needed) cache rows but the session holds \(capacity); make the session larger or use fewer images or tokens"
        case let .exceedsContext(needed, context):
            return "the query needs \(needed == .max ? "more" : "\(needed)") positions (image caches, prompt and answer tokens) but the model's context is \(context) (max_position_embeddings); use fewer images or tokens"
        case let .nonFinite(directory, what):
            return "\(directory): the model computed non-finite values (NaN or infinity) in \(what); its weights hold NaN or infinite values, or config.json does not fit them"
        case let .invalidArgument(what):
            return what
        }
    }

    public var errorDescription: String? { description }
}
