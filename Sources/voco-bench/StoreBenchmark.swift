import ArgumentParser
import Foundation
import VoCoCommands
import VoCoStore
import VoCoStoreLMDB

/// Record sizes and store speed per codec, for a 7B-shaped record at k = 1 and tiny ones.
/// The baseline is zstd alone (no byte shuffle) on the same F16 values, measured in the same run.
struct StoreBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "VoCo KV records: stored bytes per codec, batched write and read + decode records/s."
    )

    @Option(help: "Records written and read per shape and codec.") var records = 256
    @Option(help: "Records per write transaction.") var batch = 32
    @Option(help: "zstd level.") var level = 3
    @Option(help: "Distinct synthetic caches per shape (reused under other image digests).") var distinct = 32
    @Option(help: "Runs per shape and codec, each into a fresh store; the best rates are printed.") var repeats = 3

    struct Shape {
        let name: String
        let layers, kvHeads, headDim, tokens: Int
    }

    static let shapes = [
        Shape(name: "7B, k=1 (32 layers, 32x128)", layers: 32, kvHeads: 32, headDim: 128, tokens: 1),
        Shape(name: "tiny, k=1 (4 layers, 2x32)", layers: 4, kvHeads: 2, headDim: 32, tokens: 1),
        Shape(name: "tiny, full mode (4 layers, 2x32, 65 rows)", layers: 4, kvHeads: 2, headDim: 32, tokens: 65),
    ]

    func validate() throws {
        try OptionCheck.require("records", records, in: 1...10_000, "the 7B shape writes 512 KiB per record")
        try OptionCheck.require("batch", batch, in: 1...records, "at most --records")
        try OptionCheck.require("level", level, in: 1...22, "zstd's levels")
        try OptionCheck.require("distinct", distinct, in: 1...records, "at most --records")
        try OptionCheck.require("repeats", repeats, in: 1...100)
    }

    func run() throws {
        print("voco-bench store: \(records) records per shape and codec, \(batch) per transaction, zstd level \(level), F16 values, best of \(repeats) runs")
        print("values: SyntheticKV (K: per-channel mean and spread, 1 channel in 32 an outlier; V: Gaussian, per-token scale)")
        let codecs: [(String, CodecSettings)] = [
            ("zstd alone (baseline)", CodecSettings(codec: .zstd, zstdLevel: level)),
            ("shuffle + zstd", CodecSettings(codec: .shuffleZstd, zstdLevel: level)),
            ("int8 + zstd", CodecSettings(codec: .int8, zstdLevel: level)),
            ("q4 (groups of 32) + zstd", CodecSettings(codec: .q4, zstdLevel: level, groupSize: 32)),
            ("hq K8/V8", CodecSettings(codec: .hq, zstdLevel: level, keyBits: 8, valueBits: 8)),
            ("hq K4/V4", CodecSettings(codec: .hq, zstdLevel: level, keyBits: 4, valueBits: 4)),
        ]
        for shape in Self.shapes {
            let model = SyntheticKV.model(layers: shape.layers, kvHeads: shape.kvHeads, headDim: shape.headDim,
                                          tokensPerImage: shape.tokens, dtype: .f16, seed: 1)
            let caches = (0..<min(distinct, records)).map {
                SyntheticKV.make(layers: shape.layers, tokens: shape.tokens, kvHeads: shape.kvHeads, headDim: shape.headDim, seed: UInt64($0), modelSeed: 1)
            }
            let raw = shape.layers * 2 * shape.tokens * shape.kvHeads * shape.headDim * 2
            print("\n\(shape.name): \(raw) bytes raw (F16) per record")
            var rows = [["codec", "bytes/record", "ratio", "rel. RMS error", "write rec/s", "read+decode rec/s"]]
            for (name, settings) in codecs {
                var result = try measure(settings: settings, model: model, caches: caches)
                for _ in 1..<max(repeats, 1) {
                    let again = try measure(settings: settings, model: model, caches: caches)
                    result.writesPerSecond = max(result.writesPerSecond, again.writesPerSecond)
                    result.readsPerSecond = max(result.readsPerSecond, again.readsPerSecond)
                }
                rows.append([name, "\(result.bytesPerRecord)", String(format: "%.3fx", Double(raw) / Double(result.bytesPerRecord)),
                             String(format: "%.2e", result.relativeError), String(format: "%.0f", result.writesPerSecond),
                             String(format: "%.0f", result.readsPerSecond)])
            }
            printTable(rows)
        }
    }

    struct Result {
        var bytesPerRecord: Int
        var relativeError: Double
        var writesPerSecond: Double
        var readsPerSecond: Double
    }

    private func measure(settings: CodecSettings, model: ModelDescriptor, caches: [KVTensors]) throws -> Result {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("voco-bench-store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try LMDBStore.open(path: path, options: StoreOptions(create: true, codec: settings))
        try store.register(model)
        let images = (0..<records).map { SyntheticKV.imageDigest($0) }

        // Batched writes: encode a batch, then one transaction (committed with a sync).
        let writeStart = DispatchTime.now().uptimeNanoseconds
        for start in stride(from: 0, to: records, by: batch) {
            let items = (start..<min(records, start + batch)).map { (image: images[$0], kv: caches[$0 % caches.count]) }
            try store.putBatch(items, model: model.fingerprint)
        }
        let writeSeconds = Double(DispatchTime.now().uptimeNanoseconds - writeStart) / 1e9

        // Reads: one read transaction per record, checksum verified, decoded to Float32.
        var decoded: [KVTensors] = []
        let readStart = DispatchTime.now().uptimeNanoseconds
        for (n, image) in images.enumerated() {
            guard let kv = try store.get(image: image, model: model.fingerprint) else {
                throw ValidationError("record \(n) is missing after the write")
            }
            if n < caches.count { decoded.append(kv) }
        }
        let readSeconds = Double(DispatchTime.now().uptimeNanoseconds - readStart) / 1e9

        let stats = try store.stats()
        return Result(bytesPerRecord: stats.storedBytes / max(stats.records, 1),
                      relativeError: relativeError(decoded, caches), writesPerSecond: Double(records) / writeSeconds,
                      readsPerSecond: Double(records) / readSeconds)
    }

    /// RMS of (decoded - F16-rounded original) over RMS of the original, K and V together.
    private func relativeError(_ decoded: [KVTensors], _ originals: [KVTensors]) -> Double {
        var error = 0.0, norm = 0.0
        for (d, o) in zip(decoded, originals) {
            for (x, y) in zip(d.keys + d.values, o.keys + o.values) {
                let reference = Double(Float(Float16(y)))
                error += (Double(x) - reference) * (Double(x) - reference)
                norm += reference * reference
            }
        }
        return (error / max(norm, 1e-30)).squareRoot()
    }
}
