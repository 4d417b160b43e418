import Foundation

/// What went wrong between the model, the images and the question; each case names the input.
public enum PipelineError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case modelNotFound(path: String)
    case textOnlyModel(path: String)
    case preprocessorMismatch(path: String, image: String, produced: [Int], towerExpects: Int)
    case contextTooSmall(images: Int, imageRows: Int, promptTokens: Int, answerTokens: Int, needed: Int, contextLength: Int)
    /// More images than the model was trained to read at once (`voco.max_images`).
    case tooManyImages(path: String, images: Int, maximum: Int)
    case emptyQuestion
    case invalidSplit(path: String, line: Int, reason: String)
    /// A cache that cannot pass between the engine and the store.
    case cacheShape(reason: String)
    /// Ingest settings that cannot run (batch size, threads).
    case invalidIngestOptions(reason: String)

    public var description: String {
        switch self {
        case let .modelNotFound(path):
            return "\(path): no model directory here (expected config.json, *.safetensors, tokenizer.json, preprocessor_config.json); pass --model DIR or set VOCO_MODEL"
        case let .textOnlyModel(path):
            return "\(path): this model has no vision tower, so it cannot take images; ask without --image"
        case let .preprocessorMismatch(path, image, produced, size):
            return "\(image): preprocessing with \(path)/preprocessor_config.json gives \(produced[0])x\(produced[1]) pixels but the vision tower takes \(size)x\(size); the model directory's preprocessor_config.json does not fit its config.json"
        case let .contextTooSmall(images, rows, prompt, answer, needed, context):
            return "\(images) image(s) (\(rows == .max ? "too many" : "\(rows)") cache rows) + \(prompt) prompt tokens + up to \(answer) answer tokens need \(needed == .max ? "more" : "\(needed)") positions, but the model's context is \(context) (max_position_embeddings); ask about fewer images or allow fewer answer tokens"
        case let .tooManyImages(path, images, maximum):
            return "\(images) images, but \(path) was trained to read at most \(maximum) at once (voco.max_images in config.json): its answer over more would not be reliable"
        case .emptyQuestion:
            return "the question is empty"
        case let .invalidSplit(path, line, reason):
            return "\(path):\(line): \(reason)"
        case let .cacheShape(reason):
            return "cache: \(reason)"
        case let .invalidIngestOptions(reason):
            return "ingest: \(reason)"
        }
    }

    public var errorDescription: String? { description }
}
