import ArgumentParser
import Foundation
import VoCoImage
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB

/// What `voco ingest` and `voco ingestd` both take: the store, the model, and how the pipeline runs.
struct IngestArguments: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The store, created when missing: a directory (LMDB) or redis://host:port[,host:port...][/name] (default: $VOCO_STORE, else ~/.local/share/voco/store).",
        valueName: "dir-or-url"))
    var store: String?

    @Option(help: "Model directory (default: $VOCO_MODEL, else the bundled Models/voco-shapes).")
    var model: String?

    @Option(help: "Files per write transaction (one batch).")
    var batch = 16

    @Option(help: "Threads that decode and preprocess ahead of the compression pass (default: half the cores).")
    var prepareThreads: Int?

    @Option(help: "Refuse images with more pixels than this.")
    var maxPixels = ImageLimits.default.maximumPixels

    func validate() throws {
        if let problem = IngestOptions(batchSize: batch, prepareThreads: prepareThreads).problem() { throw ValidationError(problem) }
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be > 0 (got \(maxPixels))") }
    }

    var limits: ImageLimits {
        var limits = ImageLimits.default
        limits.maximumPixels = maxPixels
        return limits
    }

    var options: IngestOptions { IngestOptions(batchSize: batch, prepareThreads: prepareThreads, limits: limits) }

    /// The store (created when missing) and the model.
    func open() throws -> (store: CacheStore, model: AnsweringModel) {
        let store = try StoreLocation.open(self.store ?? LMDBStore.defaultPath, options: StoreOptions(create: true))
        return (store, try AnsweringModel(directory: model ?? DefaultModel.path()))
    }
}
