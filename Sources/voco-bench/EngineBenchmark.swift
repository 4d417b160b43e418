import ArgumentParser
import Foundation
import SafeTensors
import VoCoCommands
import VoCoCompute
import VoCoModel

/// The engine on a random model of a chosen size: compression images/s and query tokens/s,
/// against cblas_sgemm at the same shapes measured in the same run (the GEMM floor).
struct EngineBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engine", abstract: "Compression images/s and query tokens/s on a random model.")

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
    @Option(help: "Images per compression batch.") var batch = 4
    @Option(help: "Prompt tokens of the query.") var prompt = 32
    @Option(help: "Tokens decoded one by one.") var decode = 32
    @Option(help: "Weight dtype: F32, F16 or BF16.") var dtype = "F32"
    @Option(help: "Half weights: mapped (widened per GEMM) or widen (once at load).") var policy = "mapped"
    @Option(help: "Threads (default: every core).") var threads: Int?

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
        try check("batch", batch, 1...1024, "")
        try check("prompt", prompt, 1...65_536, "")
        try check("decode", decode, 1...65_536, "")
        if let threads { try check("threads", threads, 1...1024, "") }
        _ = try storage()
        guard ["mapped", "widen"].contains(policy) else { throw ValidationError("--policy \(policy): must be mapped or widen") }
        // The random checkpoint is made in memory: every weight in F32, about twice.
        let perLayer = 2 * hidden * (hidden + 2 * hidden / heads * kvHeads) + 3 * hidden * intermediate
        let weights = layers * perLayer + 2 * vocab * hidden + visionLayers * visionHidden * 12 * visionHidden
        let memory = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        guard weights <= memory / 8 else {
            throw ValidationError("a model of \(weights) weights needs about \(8 * weights >> 20) MiB to make and load; this machine has \(memory >> 20) MiB (lower --hidden, --layers, --intermediate or --vocab)")
        }
    }

    /// The weight dtype `--dtype` names.
    func storage() throws -> DType {
        guard let storage = DType(rawValue: dtype.uppercased()), [DType.f32, .f16, .bf16].contains(storage) else {
            throw ValidationError("--dtype \(dtype): must be F32, F16 or BF16")
        }
        return storage
    }

    func run() throws {
        let storage = try storage()
        let text = LlamaConfiguration(hiddenSize: hidden, numHiddenLayers: layers, numAttentionHeads: heads, numKeyValueHeads: kvHeads,
                                      intermediateSize: intermediate, vocabSize: vocab)
        let vision = CLIPVisionConfiguration(hiddenSize: visionHidden, intermediateSize: 4 * visionHidden, numHiddenLayers: visionLayers,
                                             numAttentionHeads: max(1, visionHidden / 64), imageSize: image, patchSize: patch)
        let voco = VoCoSettings(tokenId: vocab - 1, numTokens: 2, mode: .voco, layout: .sequential)
        let config = LlavaConfiguration(text: text, multimodal: MultimodalConfiguration(mmHiddenSize: visionHidden), vision: vision, voco: voco)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("voco-bench-engine-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try writeRandomCheckpoint(config, dtype: storage, to: directory)
        let compute = ComputeContext(threads: threads)
        let engine = try VoCoEngine(directory: directory, options: LoadOptions(
            weightPolicy: policy == "widen" ? .widenAtLoad : .mapped, compute: compute))

        let patches = vision.patchCount, rows = 1 + patches + 2  // BOS, patches, 2 VoCo tokens
        print("model: hidden \(hidden), \(layers) layers, \(heads)/\(kvHeads) heads, MLP \(intermediate), vocab \(vocab), \(storage.rawValue) weights (\(engine.weightsWidened ? "widened at load" : "mapped")), \(compute.threads.count) thread(s)")
        print("vision: \(visionHidden) wide, \(visionLayers) layers, \(image) px / \(patch) = \(patches) patches; batch \(batch), \(rows) LM rows per image")

        // Compression.
        let pixels = (0..<(batch * 3 * image * image)).map { Float(($0 * 7919) % 255) / 127.5 - 1 }
        _ = try engine.compress(pixels: Array(pixels.prefix(3 * image * image)), images: 1)  // warm-up
        let compressSeconds = try bestSeconds(repeats: 3) { _ = try engine.compress(pixels: pixels, images: batch) }
        let flops = Double(batch) * (visionFlops(vision, tokens: patches + 1) + languageFlops(text, rows: rows, keys: rows))
        print("compression: \(formatted(Double(batch) / compressSeconds)) images/s (\(formatted(compressSeconds * 1000, 1)) ms per batch, \(formatted(flops / compressSeconds / 1e9, 1)) GFLOP/s effective)")

        // Query: one image's cache, a prompt, then decoding token by token.
        let cache = try engine.compress(pixels: Array(pixels.prefix(3 * image * image)), images: 1).caches
        let promptIds = (0..<prompt).map { 3 + $0 % (vocab - 4) }
        let prefillSeconds = try bestSeconds(repeats: 3) {
            let session = try QuerySession(engine: engine, caches: cache, textCapacity: prompt)
            try session.append(promptIds)
        }
        print("query prefill: \(formatted(Double(prompt) / prefillSeconds, 1)) tokens/s (\(prompt) tokens after 1 image)")
        let session = try QuerySession(engine: engine, caches: cache, textCapacity: prompt + decode)
        try session.append(promptIds)
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<decode { try session.append(token: 3 + i % (vocab - 4)) }
        let decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(decode)
        print("query decode: \(formatted(1 / decodeSeconds, 1)) tokens/s (\(formatted(decodeSeconds * 1000, 2)) ms per token)")

        // Baselines: cblas_sgemm (F32) at the LM's MLP shape for a compression batch, and the
        // LM's weight matrices at m = 1 (the GEMV floor of one decoded token).
        let m = batch * rows
        let a = [Float](repeating: 0.5, count: m * hidden), b = [Float](repeating: 0.25, count: intermediate * hidden)
        var c = [Float](repeating: 0, count: m * intermediate)
        let gemmSeconds = bestSeconds {
            compute.multiplier.gemm(m: m, n: intermediate, k: hidden, alpha: 1, a: a, lda: hidden, b: b, ldb: hidden,
                                    bTransposed: true, beta: 0, c: &c, ldc: intermediate)
        }
        print("baseline cblas_sgemm [\(m) x \(hidden)] x [\(hidden) x \(intermediate)]: \(formatted(2 * Double(m * hidden * intermediate) / gemmSeconds / 1e9, 1)) GFLOP/s")
        let shapes = [(text.queryWidth, hidden), (text.kvWidth, hidden), (text.kvWidth, hidden), (hidden, text.queryWidth),
                      (intermediate, hidden), (intermediate, hidden), (hidden, intermediate)]
        let weights = shapes.map { [Float](repeating: 0.01, count: $0.0 * $0.1) }
        var y = [Float](repeating: 0, count: max(intermediate, hidden, text.queryWidth, vocab))
        let x = [Float](repeating: 1, count: max(intermediate, hidden, text.queryWidth))
        let lmHead = [Float](repeating: 0.01, count: vocab * hidden)
        let gemvSeconds = bestSeconds {
            for _ in 0..<layers { for (w, s) in zip(weights, shapes) {
                compute.multiplier.gemm(m: 1, n: s.0, k: s.1, alpha: 1, a: x, lda: s.1, b: w, ldb: s.1, bTransposed: true, beta: 0, c: &y, ldc: s.0)
            } }
            compute.multiplier.gemm(m: 1, n: vocab, k: hidden, alpha: 1, a: x, lda: hidden, b: lmHead, ldb: hidden, bTransposed: true, beta: 0, c: &y, ldc: vocab)
        }
        print("baseline cblas_sgemm m=1 over the F32 LM weights: \(formatted(1 / gemvSeconds, 1)) tokens/s (\(formatted(gemvSeconds * 1000, 2)) ms)")
    }

    /// Multiply-adds x 2 of the CLIP layers that run (all but the last) for one image.
    func visionFlops(_ v: CLIPVisionConfiguration, tokens: Int) -> Double {
        let t = Double(tokens), h = Double(v.hiddenSize), i = Double(v.intermediateSize)
        let perLayer = 2 * t * (4 * h * h + 2 * h * i) + 4 * t * t * h
        return Double(v.numHiddenLayers - 1) * perLayer + 2 * Double(v.patchCount) * h * Double(3 * v.patchSize * v.patchSize)
    }

    /// Multiply-adds x 2 of the LLaMA layers (and the projector) for one sequence of `rows`.
    func languageFlops(_ t: LlamaConfiguration, rows: Int, keys: Int) -> Double {
        let r = Double(rows), h = Double(t.hiddenSize)
        let linear = h * Double(t.queryWidth + 2 * t.kvWidth) + Double(t.queryWidth) * h + 3 * h * Double(t.intermediateSize)
        let attention = 4 * r * Double(keys) * Double(t.queryWidth)
        return Double(t.numHiddenLayers) * (2 * r * linear + attention) + 2 * r * (Double(visionHidden) * h + h * h)
    }
}
