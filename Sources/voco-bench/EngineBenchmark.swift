import ArgumentParser
import Foundation
import SafeTensors
import VoCoCommands
import VoCoCompute
import VoCoModel

/// The engine on a random model of a chosen size (or a model directory): compression images/s
/// and query tokens/s, peak RSS, and the floors measured in the same run: cblas_sgemm at the
/// compression batch's MLP shape (the GEMM floor), cblas_sgemv over the language model's weight
/// shapes, and a plain read of the weights a decoded token streams (the memory-bandwidth floor).
struct EngineBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engine", abstract: "Compression images/s and query tokens/s on a random model.")

    @Option(help: "A model directory to run instead of a random model (the shape options are then ignored).") var model: String?
    @OptionGroup var shape: RandomModelShape
    @Option(help: "Images per compression batch (0: no compression; the query is then text only).") var batch = 4
    @Option(help: "Prompt tokens of the query.") var prompt = 32
    @Option(help: "Tokens decoded one by one.") var decode = 32
    @Option(help: "Half weights: mapped (read in place) or widen (to F32 once at load).") var policy = "mapped"
    @Option(help: "Compute backend: \(ComputeBackend.argumentNames) (default: $VOCO_BACKEND, else kernels).") var backend: String?
    @Option(help: "Threads (default: $VOCO_THREADS, else every core).") var threads: Int?
    @Option(help: "Timed runs of compression and prefill (the best is reported).") var repeats = 3
    @Flag(inversion: .prefixedNo, help: "Measure the floors (sgemm, sgemv, weight read) after the engine.") var baselines = true
    @Option(help: "Also write the figures as one JSON object to this file.") var json: String?

    func validate() throws {
        let check = OptionCheck.require
        try check("batch", batch, 0...1024, "0 leaves compression out")
        try check("prompt", prompt, 1...65_536, "")
        try check("decode", decode, 1...65_536, "")
        try check("repeats", repeats, 1...1000, "")
        if let threads { try check("threads", threads, 1...1024, "") }
        guard ["mapped", "widen"].contains(policy) else { throw ValidationError("--policy \(policy): must be mapped or widen") }
        if let backend, ComputeBackend(name: backend) == nil {
            throw ValidationError("--backend \(backend): must be one of \(ComputeBackend.argumentNames)")
        }
    }

    func run() throws {
        var compute = ComputeBackend.default
        if let backend {
            guard let named = ComputeBackend(name: backend) else { throw ValidationError("--backend must be one of \(ComputeBackend.argumentNames)") }
            compute = named
        }
        let directory: String
        var temporary: String?
        if let model {
            directory = model
        } else {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("voco-bench-engine-\(UUID().uuidString)").path
            temporary = directory
            try writeRandomCheckpoint(shape.configuration(), dtype: try shape.storage(), to: directory, vision: batch > 0)
        }
        defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
        let context = ComputeContext(backend: compute, threads: threads)
        let engine = try VoCoEngine(directory: directory, options: LoadOptions(
            weightPolicy: policy == "widen" ? .widenAtLoad : .mapped, compute: context))
        var figures = try measure(engine, context: context)
        figures["peak_rss_gb"] = peakResidentBytes() / 1e9
        print("peak RSS: \(formatted(figures["peak_rss_gb"]!, 2)) GB (weight files: \(formatted(weightFileBytes(directory) / 1e9, 2)) GB)")
        if baselines { figures.merge(try measureFloors(engine, context: context, directory: directory)) { $1 } }
        if let json {
            var object: [String: Any] = figures
            object["compute"] = context.summary
            object["backend"] = compute.description
            object["model"] = model ?? "random"
            try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: json))
        }
    }

    // MARK: - The engine

    func measure(_ engine: VoCoEngine, context: ComputeContext) throws -> [String: Double] {
        let text = engine.text
        var figures: [String: Double] = [:]
        let weights = engine.weightsWidened ? "widened at load" : "mapped"
        print("model: hidden \(text.hiddenSize), \(text.numHiddenLayers) layers, \(text.numAttentionHeads)/\(text.numKeyValueHeads) heads, MLP \(text.intermediateSize), vocab \(text.vocabSize), weights \(weights)")
        print("compute: \(context.summary)")

        var cache: [VoCoCache] = []
        if batch > 0, let vision = engine.vision {
            let v = vision.config, side = v.imageSize, patches = v.patchCount
            let rows = engine.compressionLayout(mode: .voco)?.length ?? 0
            print("vision: \(v.hiddenSize) wide, \(v.numHiddenLayers) layers, \(side) px / \(v.patchSize) = \(patches) patches; batch \(batch), \(rows) LM rows per image")
            let pixels = (0..<(batch * 3 * side * side)).map { Float(($0 * 7919) % 255) / 127.5 - 1 }
            cache = try engine.compress(pixels: Array(pixels.prefix(3 * side * side)), images: 1).caches  // warm-up
            let seconds = try bestSeconds(repeats: repeats) { _ = try engine.compress(pixels: pixels, images: batch) }
            let flops = Double(batch) * (visionFlops(v, tokens: patches + 1) + languageFlops(text, rows: rows, keys: rows, projectorInput: v.hiddenSize))
            figures["compress_images_per_s"] = Double(batch) / seconds
            figures["compress_gflops"] = flops / seconds / 1e9
            print("compression: \(formatted(Double(batch) / seconds, 3)) images/s (\(formatted(seconds * 1000, 1)) ms per batch, \(formatted(flops / seconds / 1e9, 1)) GFLOP/s effective)")
        }

        // Query: one image's cache (or none), a prompt, then decoding token by token.
        let vocab = text.vocabSize
        let promptIds = (0..<prompt).map { 3 + $0 % max(1, vocab - 4) }
        let prefill = try bestSeconds(repeats: repeats) {
            let session = try QuerySession(engine: engine, caches: cache, textCapacity: prompt)
            try session.append(promptIds)
        }
        figures["prefill_tokens_per_s"] = Double(prompt) / prefill
        print("query prefill: \(formatted(Double(prompt) / prefill, 1)) tokens/s (\(prompt) tokens after \(cache.count) image(s))")
        let session = try QuerySession(engine: engine, caches: cache, textCapacity: prompt + decode)
        try session.append(promptIds)
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<decode { try session.append(token: 3 + i % max(1, vocab - 4)) }
        let perToken = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(max(1, decode))
        figures["decode_tokens_per_s"] = 1 / perToken
        print("query decode: \(formatted(1 / perToken, 2)) tokens/s (\(formatted(perToken * 1000, 2)) ms per token)")
        return figures
    }

    // MARK: - Floors measured in the same run

    func measureFloors(_ engine: VoCoEngine, context: ComputeContext, directory: String) throws -> [String: Double] {
        let text = engine.text, hidden = text.hiddenSize, intermediate = text.intermediateSize, vocab = text.vocabSize
        let blas = BLASMultiplier(threads: context.threads)
        var figures: [String: Double] = [:]
        // cblas_sgemm at the LM's MLP shape for a compression batch.
        let m = max(1, batch) * (engine.compressionLayout(mode: .voco)?.length ?? 512)
        let a = [Float](repeating: 0.5, count: m * hidden), b = [Float](repeating: 0.25, count: intermediate * hidden)
        var c = [Float](repeating: 0, count: m * intermediate)
        let gemmSeconds = bestSeconds {
            blas.gemm(m: m, n: intermediate, k: hidden, alpha: 1, a: a, lda: hidden, b: b, ldb: hidden, bTransposed: true, beta: 0, c: &c, ldc: intermediate)
        }
        figures["sgemm_gflops"] = 2 * Double(m * hidden * intermediate) / gemmSeconds / 1e9
        print("floor: cblas_sgemm [\(m) x \(hidden)] x [\(hidden) x \(intermediate)]: \(formatted(figures["sgemm_gflops"]!, 1)) GFLOP/s")

        // cblas_sgemv over one token's F32 weight shapes.
        let shapes = [(text.queryWidth, hidden), (text.kvWidth, hidden), (text.kvWidth, hidden), (hidden, text.queryWidth),
                      (intermediate, hidden), (intermediate, hidden), (hidden, intermediate)]
        let weights = shapes.map { [Float](repeating: 0.01, count: $0.0 * $0.1) }
        var y = [Float](repeating: 0, count: max(intermediate, hidden, text.queryWidth, vocab))
        let x = [Float](repeating: 1, count: max(intermediate, hidden, text.queryWidth))
        let lmHead = [Float](repeating: 0.01, count: vocab * hidden)
        let gemvSeconds = bestSeconds {
            for _ in 0..<text.numHiddenLayers { for (w, s) in zip(weights, shapes) {
                blas.gemm(m: 1, n: s.0, k: s.1, alpha: 1, a: x, lda: s.1, b: w, ldb: s.1, bTransposed: true, beta: 0, c: &y, ldc: s.0)
            } }
            blas.gemm(m: 1, n: vocab, k: hidden, alpha: 1, a: x, lda: hidden, b: lmHead, ldb: hidden, bTransposed: true, beta: 0, c: &y, ldc: vocab)
        }
        figures["sgemv_tokens_per_s"] = 1 / gemvSeconds
        print("floor: cblas_sgemv over the LM's weight shapes in F32: \(formatted(1 / gemvSeconds, 2)) tokens/s")

        // A plain read of the bytes a decoded token streams (every LM matrix, lm_head included).
        let read = try WeightRead(directory: directory, threads: context.threads)
        let readSeconds = bestSeconds { read.run() }
        figures["read_gbps"] = Double(read.bytes) / readSeconds / 1e9
        figures["read_tokens_per_s"] = 1 / readSeconds
        print("floor: plain read of the \(formatted(Double(read.bytes) / 1e9, 2)) GB a token streams: \(formatted(figures["read_gbps"]!, 1)) GB/s = \(formatted(1 / readSeconds, 2)) tokens/s")
        return figures
    }

    /// Multiply-adds x 2 of the CLIP layers that run (all but the last) for one image.
    func visionFlops(_ v: CLIPVisionConfiguration, tokens: Int) -> Double {
        let t = Double(tokens), h = Double(v.hiddenSize), i = Double(v.intermediateSize)
        let perLayer = 2 * t * (4 * h * h + 2 * h * i) + 4 * t * t * h
        return Double(v.numHiddenLayers - 1) * perLayer + 2 * Double(v.patchCount) * h * Double(3 * v.patchSize * v.patchSize)
    }

    /// Multiply-adds x 2 of the LLaMA layers (and the projector) for one sequence of `rows`.
    func languageFlops(_ t: LlamaConfiguration, rows: Int, keys: Int, projectorInput: Int) -> Double {
        let r = Double(rows), h = Double(t.hiddenSize)
        let linear = h * Double(t.queryWidth + 2 * t.kvWidth) + Double(t.queryWidth) * h + 3 * h * Double(t.intermediateSize)
        let attention = 4 * r * Double(keys) * Double(t.queryWidth)
        return Double(t.numHiddenLayers) * (2 * r * linear + attention) + 2 * r * (Double(projectorInput) * h + h * h)
    }
}

// MARK: - The shape of a random model

/// Shape options of a random LLaVA/VoCo model (defaults: a small one that runs in seconds).
struct RandomModelShape: ParsableArguments {
    @Option(help: "LLaMA hidden size.") var hidden = 1024
    @Option(help: "LLaMA layers.") var layers = 4
    @Option(help: "Attention heads.") var heads = 16
    @Option(help: "KV heads.") var kvHeads = 8
    @Option(help: "MLP width.") var intermediate = 2816
    @Option(help: "Vocabulary.") var vocab = 8000
    @Option(help: "CLIP hidden size.") var visionHidden = 256
    @Option(help: "CLIP layers (features from the second to last).") var visionLayers = 4
    @Option(help: "Image side in pixels.") var image = 224
    @Option(help: "Patch side in pixels.") var patch = 14
    @Option(help: "Weight dtype of the random model: F32, F16 or BF16.") var dtype = "F32"

    func validate() throws {
        let check = OptionCheck.require
        try check("hidden", hidden, 1...65_536, "")
        try check("heads", heads, 1...hidden, "at most --hidden")
        try check("kv-heads", kvHeads, 1...heads, "at most --heads")
        guard hidden % heads == 0, (hidden / heads) % 2 == 0, heads % kvHeads == 0 else {
            throw ValidationError("--hidden \(hidden), --heads \(heads), --kv-heads \(kvHeads): --hidden must be --heads times an even head size, and --heads a multiple of --kv-heads")
        }
        try check("layers", layers, 1...1024, "")
        try check("intermediate", intermediate, 1...(1 << 20), "")
        try check("vocab", vocab, 5...(1 << 22), "the prompt uses ids 3 ..< vocab - 1")
        try check("vision-hidden", visionHidden, 1...16_384, "")
        guard visionHidden % max(1, visionHidden / 64) == 0 else {
            throw ValidationError("--vision-hidden \(visionHidden): must split into heads of about 64 (a multiple of \(max(1, visionHidden / 64)))")
        }
        try check("vision-layers", visionLayers, 2...256, "features come from the second to last")
        try check("image", image, 1...4096, "")
        try check("patch", patch, 1...image, "at most --image")
        guard image % patch == 0 else { throw ValidationError("--image \(image): must be a multiple of --patch \(patch)") }
        _ = try storage()
        // The checkpoint is streamed to disk: it must fit there (and a run must load it).
        let perLayer = 2 * hidden * (hidden + 2 * hidden / heads * kvHeads) + 3 * hidden * intermediate
        let weights = layers * perLayer + 2 * vocab * hidden + visionLayers * visionHidden * 12 * visionHidden
        guard weights <= 1 << 36 else {
            throw ValidationError("a model of \(weights) weights is beyond what voco-bench writes (at most 2^36; lower --hidden, --layers, --intermediate or --vocab)")
        }
    }

    func storage() throws -> DType {
        guard let storage = DType(rawValue: dtype.uppercased()), [.f32, .f16, .bf16].contains(storage) else {
            throw ValidationError("--dtype \(dtype): must be F32, F16 or BF16")
        }
        return storage
    }

    func configuration() -> LlavaConfiguration {
        let text = LlamaConfiguration(hiddenSize: hidden, numHiddenLayers: layers, numAttentionHeads: heads, numKeyValueHeads: kvHeads,
                                      intermediateSize: intermediate, vocabSize: vocab)
        let vision = CLIPVisionConfiguration(hiddenSize: visionHidden, intermediateSize: 4 * visionHidden, numHiddenLayers: visionLayers,
                                             numAttentionHeads: max(1, visionHidden / 64), imageSize: image, patchSize: patch)
        let voco = VoCoSettings(tokenId: vocab - 1, numTokens: 2, mode: .voco, layout: .sequential)
        return LlavaConfiguration(text: text, multimodal: MultimodalConfiguration(mmHiddenSize: visionHidden), vision: vision, voco: voco)
    }
}

/// `voco-bench checkpoint --out DIR [shape]`: writes a random model directory once, for
/// `engine --model DIR` runs and for the peers of Tools/bench (streamed: a 7B one fits).
struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "checkpoint", abstract: "Write a random model directory of a chosen shape.")

    @Option(help: "The directory to write (config.json + model.safetensors).") var out: String
    @OptionGroup var shape: RandomModelShape
    @Flag(help: "Leave the vision tower and projector out (a text-only model).") var textOnly = false

    func run() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        try writeRandomCheckpoint(shape.configuration(), dtype: try shape.storage(), to: out, vision: !textOnly)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        print("\(out): \(formatted(weightFileBytes(out) / 1e9, 2)) GB of weights in \(formatted(seconds, 1)) s")
    }
}

// MARK: - Memory figures

/// Peak resident set of this process (getrusage), in bytes.
func peakResidentBytes() -> Double {
    var usage = rusage()
    getrusage(0, &usage)  // RUSAGE_SELF
    return Double(usage.ru_maxrss) * 1024
}

/// Bytes of the *.safetensors files in `directory`.
func weightFileBytes(_ directory: String) -> Double {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return files.filter { $0.hasSuffix(".safetensors") }.reduce(0.0) { total, name in
        let size = (try? FileManager.default.attributesOfItem(atPath: directory + "/" + name)[.size] as? NSNumber)?.doubleValue ?? 0
        return total + size
    }
}
