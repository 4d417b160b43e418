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

    @Option(help: "Compute threads of the compression pass (default: every core).")
    var threads: Int?

    @Option(help: "Rounds of the three-way comparison (each: ingest, decode+preprocess alone, compression alone).")
    var rounds = 3

    @Option(help: "Images per phase of a round (default: up to 200 of the files).")
    var slice: Int?

    func run() throws {
        var files = FileWalk.collect([images]).files
        if let count { files = Array(files.prefix(count)) }
        let slice = min(self.slice ?? 200, files.count)
        guard !files.isEmpty, rounds > 0, slice > 0 else { throw ValidationError("no files under \(images), or --rounds / --slice < 1") }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("voco-bench-ingest-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let directory = clipL ? try Self.writeCLIPLModel(to: scratch + "/model") : (model ?? DefaultModel.path())
        let answering = try AnsweringModel(directory: directory, options: LoadOptions(compute: ComputeContext(threads: threads)))
        let options = IngestOptions(batchSize: batch, prepareThreads: prepareThreads)
        let vision = try requireVisionTower(answering)
        print("model: \(clipL ? "random CLIP-L/336 tower (F16) + 4-layer LM" : directory); tower \(vision.config.hiddenSize) wide, \(vision.config.numHiddenLayers) layers, \(vision.config.imageSize) px, \(vision.featureCount) patches")
        print("images: \(files.count) files from \(images); batch \(batch), \(options.prepareThreads) prepare thread(s), \(answering.engine.compute.threads.count) compute thread(s), \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(Self.loadAverage())")

        // 1. The whole ingest of every file into a new store, then the process's memory.
        let full = try Self.ingest(files, answering: answering, options: options, store: scratch + "/full")
        let memory = Self.memoryMiB()
        print("whole ingest: \(full.images) images in \(formatted(full.seconds, 2)) s (\(formatted(100 * full.commitSeconds / full.seconds, 1))% in commits) = \(Self.rate(full.rate)) images/s, \(formatted(full.cpuPerImage * 1000, 2)) CPU-ms per image, \(full.bytes / max(1, full.images)) bytes per record")
        print("memory: peak RSS \(formatted(memory.peak, 1)) MiB; largest after a batch: anonymous \(formatted(full.largestMiB.anonymous, 1)) MiB, file-backed \(formatted(full.largestMiB.file, 1)) MiB (the binary, the model, the store's map); after the ingest: anonymous \(formatted(memory.anonymous, 1)) MiB")

        // 2. Rounds over slices of the files: the ingest, then each stage alone, interleaved so
        //    that a shared machine's load weighs on all three alike.
        guard let preprocessor = answering.preprocessor else { throw ValidationError("\(directory): no image preprocessor") }
        var rates: [(ingest: Measure, prepare: Measure, compress: Measure)] = []
        for round in 0..<rounds {
            let start = (round * slice) % files.count
            let part = Array((files + files)[start..<(start + slice)])
            let ingest = try Self.ingest(part, answering: answering, options: options, store: scratch + "/round-\(round)")
            let empty = try Ingestor(store: try LMDBStore.open(path: scratch + "/empty-\(round)", options: StoreOptions(create: true)),
                                     model: answering, options: options)
            let prepare = try Self.measure { empty.prepareOnly(part.map { IngestSource(path: $0, collection: "bench") }) }
            var pixels: [[Float]] = []  // at most 32 preloaded, cycled
            for path in part where pixels.count < 32 {
                guard let loaded = try? ImageFile.load(path: path), let tensor = try? preprocessor.tensor(loaded.image) else { continue }
                pixels.append(tensor.values)
            }
            guard !pixels.isEmpty else { throw ValidationError("no image among the files decodes") }
            let compress = try Self.measure {
                for i in 0..<slice { _ = try empty.compressOnly(pixels[i % pixels.count], digest: Digest.sha256([UInt8(i % 251)])) }
                return slice
            }
            rates.append((ingest, prepare, compress))
            print("round \(round + 1): ingest \(Self.rate(ingest.rate)) (commits \(formatted(100 * ingest.commitSeconds / ingest.seconds, 1))%, compression waiting \(formatted(100 * ingest.waitSeconds / ingest.seconds, 1))% of the time), decode+preprocess alone \(Self.rate(prepare.rate)), compression+encoding alone \(Self.rate(compress.rate)) images/s -> \(formatted(100 * ingest.rate / min(prepare.rate, compress.rate), 1))% of the slower")
        }
        let median = { (values: [Double]) in values.sorted()[values.count / 2] }
        let ingestRate = median(rates.map(\.ingest.rate)), prepareRate = median(rates.map(\.prepare.rate))
        let compressRate = median(rates.map(\.compress.rate))
        print("median of \(rounds) rounds of \(slice) images: ingest \(Self.rate(ingestRate)), decode+preprocess alone \(Self.rate(prepareRate)), compression+encoding alone \(Self.rate(compressRate)) images/s")
        print("CPU-ms per image (all threads): ingest \(formatted(median(rates.map(\.ingest.cpuPerImage)) * 1000, 2)), decode+preprocess \(formatted(median(rates.map(\.prepare.cpuPerImage)) * 1000, 2)), compression+encoding \(formatted(median(rates.map(\.compress.cpuPerImage)) * 1000, 2))")
        let ratios = rates.map { 100 * $0.ingest.rate / min($0.prepare.rate, $0.compress.rate) }
        print("ingest / slower bound, median of the rounds' ratios: \(formatted(median(ratios), 1))% (goal >= 90%; rounds \(ratios.sorted().map { formatted($0, 1) }.joined(separator: ", ")))")
    }

    /// Images through a stage, wall seconds and the process's CPU seconds (all threads).
    struct Measure {
        var images = 0, bytes = 0
        var seconds = 0.0, cpu = 0.0
        /// Of `seconds`, in write transactions (ingest only).
        var commitSeconds = 0.0
        /// Of `seconds`, the compression pass waiting for decoded files or the previous commit.
        var waitSeconds = 0.0
        /// The largest anonymous and file-backed RSS seen after a batch (ingest only).
        var largestMiB = (anonymous: 0.0, file: 0.0)
        var rate: Double { Double(images) / seconds }
        var cpuPerImage: Double { cpu / Double(max(1, images)) }
    }

    static func measure(_ body: () throws -> Int) rethrows -> Measure {
        let (wall, cpu) = (DispatchTime.now().uptimeNanoseconds, cpuSeconds())
        let images = try body()
        return Measure(images: images, seconds: since(wall), cpu: cpuSeconds() - cpu)
    }

    /// Every file through `Ingestor.run` into a new store (what `voco ingest` does after the walk).
    static func ingest(_ files: [String], answering: AnsweringModel, options: IngestOptions, store path: String) throws -> Measure {
        let ingestor = try Ingestor(store: try LMDBStore.open(path: path, options: StoreOptions(create: true)), model: answering, options: options)
        var bytes = 0, commits = 0.0, waits = 0.0, anonymous = 0.0, file = 0.0
        var measure = try measure {
            var compressed = 0
            try ingestor.run(files.map { IngestSource(path: $0, collection: "bench") }) { batch in
                for result in batch.results { if case let .compressed(_, size) = result.outcome { compressed += 1; bytes += size } }
                commits += batch.commitSeconds
                waits += batch.waitSeconds
                let memory = memoryMiB()
                (anonymous, file) = (max(anonymous, memory.anonymous), max(file, memory.file))
            }
            return compressed
        }
        measure.bytes = bytes
        measure.commitSeconds = commits
        measure.waitSeconds = waits
        measure.largestMiB = (anonymous, file)
        return measure
    }

    // MARK: Helpers

    /// A rate with three significant digits or one decimal, whichever shows more.
    static func rate(_ value: Double) -> String { value < 10 ? String(format: "%.3g", value) : formatted(value, 1) }

    static func since(_ start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        return user + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    /// VmHWM, RssAnon and RssFile of /proc/self/status, in MiB.
    static func memoryMiB() -> (peak: Double, anonymous: Double, file: Double) {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> Double {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
                  let kib = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return .nan }
            return kib / 1024
        }
        return (field("VmHWM"), field("RssAnon"), field("RssFile"))
    }

    static func loadAverage() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3).joined(separator: " ")
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
