import Foundation
import VoCoImage
import VoCoModel
import VoCoTokenizer

// MARK: - A model directory, loaded for answering questions about images

/// Everything a model directory holds that the pipeline needs: the engine (both VoCo passes),
/// the tokenizer and the image preprocessor. This is where the model side is assembled; the
/// storage side meets it in the ingest and query code.
public final class AnsweringModel: @unchecked Sendable {
    public let directory: String
    public let engine: VoCoEngine
    public let tokenizer: Tokenizer
    /// `nil` for a text-only model.
    public let preprocessor: ImagePreprocessor?

    public var settings: VoCoSettings { engine.settings }

    public init(directory: String, options: LoadOptions = LoadOptions()) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PipelineError.modelNotFound(path: directory)
        }
        self.directory = directory
        engine = try VoCoEngine(directory: directory, options: options)
        tokenizer = try Tokenizer(directory: directory)
        preprocessor = engine.vision == nil ? nil : try ImagePreprocessor(modelDirectory: directory)
    }

    /// The query text for `question`: the model's prompt template applied, tokenised without BOS.
    public func promptIds(for question: String) -> [Int] {
        tokenizer.encode(settings.prompt(for: question), addSpecialTokens: false)
    }

    /// Positions the model accepts (`max_position_embeddings`).
    public var contextLength: Int { engine.text.maxPositionEmbeddings }

    /// Cache rows one image takes, from the settings alone (k in `voco` mode, 1 in `avgpool`,
    /// BOS + prefix + patches in `full`); `nil` for a text-only model.
    public var rowsPerImage: Int? { engine.compressionLayout(mode: settings.mode)?.kept.count }

    /// Position of an image's first cache row in its compression pass.
    var firstCachePosition: Int { engine.compressionLayout(mode: settings.mode)?.kept.lowerBound ?? 0 }
}

// MARK: - Where the bundled model lives

public enum DefaultModel {
    /// The bundled model's folder inside the repository.
    public static let relativePath = "Models/voco-shapes"

    /// `$VOCO_MODEL`, else `Models/voco-shapes` under the current directory, else under the
    /// repository that holds the running executable (`<repo>/.build/<config>/voco`).
    public static func path(environment: [String: String] = ProcessInfo.processInfo.environment,
                            executable: String = CommandLine.arguments.first ?? "") -> String {
        if let path = environment["VOCO_MODEL"], !path.isEmpty { return path }
        let fm = FileManager.default
        let local = (fm.currentDirectoryPath as NSString).appendingPathComponent(relativePath)
        if fm.fileExists(atPath: local) { return local }
        var url = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = url.appendingPathComponent(relativePath).path
            if fm.fileExists(atPath: candidate) { return candidate }
            url.deleteLastPathComponent()
        }
        return local
    }
}
