import ArgumentParser
import Foundation
import SafeTensors
import VoCoImage
import VoCoModel
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB
#if canImport(Glibc)
import Glibc
#endif

/// The whole ingest (walked files -> records in a new LMDB store) against its two stages alone,
/// in the same run: decode + preprocess (the prepare threads, as the pipeline runs them) and the
/// compression pass + record encoding on preloaded pixels. Peak RSS is read after the ingest,
/// before the bounds are measured; compare runs with different counts to see it stay flat.
struct IngestBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "voco ingest's images/s next to decode+preprocess alone and compression alone; peak RSS.",
        discussion: """
            Images: e.g. python Tools/bench/shapes_images.py --count 10000 --out /tmp/shapes (the \
            shapes world, the bundled model's size). --clip-l swaps the bundled model for a random \
            CLIP-L/336 tower (24 layers, 1024 wide, 576 patches) under a small LM.
            """
    )

    @Option(help: "A folder of images (walked like voco ingest does).")
    var images: String

    @Option(help: "Ingest the first N files of the sorted walk (default all).")
    var count: Int?

    @Option(help: "Model directory (default: the bundled Models/voco-shapes).")
    var model: String?

    @Flag(help: "A random CLIP-L/336-shaped tower (F16 weights) under a small LM instead of --model.")
    var clipL = false

    @Option(help: "Files per write transaction.")
    var batch = 16

    @Option(help: "Prepare threads (default: half the cores).")
    var prepareThreads: Int?

    @Option(help: "How many images the compression-alone bound compresses (cycling over at most 32 preloaded).")
    var boundImages = 200

    func run() throws {
        var files = FileWalk.collect([images]).files
        if let count { files = Array(files.prefix(count)) }
        guard !files.isEmpty, boundImages > 0 else { throw ValidationError("no files under \(images), or --bound-images < 1") }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("voco-bench-ingest-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let directory = clipL ? try Self.writeCLIPLModel(to: scratch + "/model") : (model ?? DefaultModel.path())
        let answering = try AnsweringModel(directory: directory)
        let options = IngestOptions(batchSize: batch, prepareThreads: prepareThreads)
        let sources = files.map { IngestSource(path: $0, collection: "bench") }
        let vision = try requireVisionTower(answering)
        print("model: \(clipL ? "random CLIP-L/336 tower + small LM" : directory); tower \(vision.config.hiddenSize) wide, \(vision.config.numHiddenLayers) layers, \(vision.config.imageSize) px, \(vision.featureCount) patches")
        print("images: \(files.count) files from \(images); batch \(batch), \(options.prepareThreads) prepare thread(s), \(ProcessInfo.processInfo.activeProcessorCount) cores")

        // 1. The whole ingest into a new store (what `voco ingest` does after the walk).
        let store = try LMDBStore.open(path: scratch + "/store", options: StoreOptions(create: true))
        let ingestor = try Ingestor(store: store, model: answering, options: options)
        var compressed = 0, stored = 0
        let ingestStart = DispatchTime.now().uptimeNanoseconds
        try ingestor.run(sources) { batch in
            for result in batch.results { if case let .compressed(_, bytes) = result.outcome { compressed += 1; stored += bytes } }
        }
        let ingestSeconds = Self.since(ingestStart)
        let rss = Self.peakRSSMiB()
        print("peak RSS after the ingest: \(formatted(rss, 1)) MiB")

        // 2. Decode + preprocess alone: the prepare stage over the same files, a store without records.
        let empty = try LMDBStore.open(path: scratch + "/empty", options: StoreOptions(create: true))
        let preparer = try Ingestor(store: empty, model: answering, options: options)
        let prepareStart = DispatchTime.now().uptimeNanoseconds
        let prepared = preparer.prepareOnly(sources)
        let prepareSeconds = Self.since(prepareStart)

        // 3. Compression + encoding alone on preloaded pixels (up to 32 images, cycled).
        guard let preprocessor = answering.preprocessor else { throw ValidationError("\(directory): no image preprocessor") }
        var pixels: [[Float]] = []
        for path in files where pixels.count < 32 {
            guard let loaded = try? ImageFile.load(path: path), let tensor = try? preprocessor.tensor(loaded.image) else { continue }
            pixels.append(tensor.values)
        }
        _ = try preparer.compressOnly(pixels[0], digest: Digest.sha256([0]))  // warm-up
        let compressStart = DispatchTime.now().uptimeNanoseconds
        for i in 0..<boundImages { _ = try preparer.compressOnly(pixels[i % pixels.count], digest: Digest.sha256([UInt8(i % 251)])) }
        let compressSeconds = Self.since(compressStart)

        let ingestRate = Double(compressed) / ingestSeconds
        let prepareRate = Double(prepared) / prepareSeconds, compressRate = Double(boundImages) / compressSeconds
        let bound = min(prepareRate, compressRate)
        print("ingest: \(formatted(ingestRate, 1)) images/s (\(compressed) compressed in \(formatted(ingestSeconds, 2)) s, \(stored / max(1, compressed)) bytes per record)")
        print("decode + preprocess alone: \(formatted(prepareRate, 1)) images/s (\(prepared) images)")
        print("compression + encoding alone: \(formatted(compressRate, 1)) images/s (\(boundImages) images)")
        print("ingest / slower bound: \(formatted(100 * ingestRate / bound, 1))% (goal >= 90%)")
    }

    // MARK: Helpers

    static func since(_ start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    static func peakRSSMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024  // KiB on Linux
    }

    /// A random CLIP-L/336 tower (OpenAI's preprocessing) under a 4-layer LM, with the bundled
    /// model's tokenizer (ingest never tokenises).
    static func writeCLIPLModel(to directory: String) throws -> String {
        let text = LlamaConfiguration(hiddenSize: 1024, numHiddenLayers: 4, numAttentionHeads: 16, numKeyValueHeads: 8,
                                      intermediateSize: 2816, vocabSize: 8000)
        let vision = CLIPVisionConfiguration(hiddenSize: 1024, intermediateSize: 4096, numHiddenLayers: 24, numAttentionHeads: 16,
                                             imageSize: 336, patchSize: 14)
        let config = LlavaConfiguration(text: text, multimodal: MultimodalConfiguration(mmHiddenSize: 1024), vision: vision,
                                        voco: VoCoSettings(tokenId: 7999, numTokens: 1, mode: .voco, layout: .sequential))
        try writeRandomCheckpoint(config, dtype: .f16, to: directory)
        let preprocessor = """
            {"crop_size": {"height": 336, "width": 336}, "do_center_crop": true, "do_normalize": true, "do_rescale": true,
             "do_resize": true, "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
             "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "rescale_factor": 0.00392156862745098,
             "size": {"shortest_edge": 336}}
            """
        try Data(preprocessor.utf8).write(to: URL(fileURLWithPath: directory + "/preprocessor_config.json"))
        let bundled = DefaultModel.path()
        for name in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: bundled + "/" + name, toPath: directory + "/" + name)
        }
        return directory
    }
}

private func requireVisionTower(_ model: AnsweringModel) throws -> CLIPVisionTower {
    guard let vision = model.engine.vision else { throw ValidationError("\(model.directory): no vision tower, nothing to ingest") }
    return vision
}
