import ArgumentParser
import Foundation
import VoCoStore

/// `voco debug store-fill`: writes synthetic records (SyntheticKV) into a store, a batch per
/// transaction, each batch with its images and collection membership. Tests use it as a writer
/// in another process; until ingest exists it is also the quick way to get a store to inspect.
struct StoreFillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store-fill",
        abstract: "Write synthetic VoCo KV records into a store (for tests and trying the inspect commands)."
    )

    @OptionGroup var location: StoreLocation
    @Flag(help: "Create the store if there is none.") var create = false
    @Option(help: "Codec of a new store: shuffle-zstd, zstd, int8, q4, hq, with options as in hq:k=5,v=4 or q4:group=64 (docs/store.md).") var codec = "shuffle-zstd"
    @Option(help: "Element type of the synthetic model: F32, F16, BF16.") var dtype = "F16"
    @Option var layers = 2
    @Option var kvHeads = 2
    @Option var headDim = 8
    @Option(help: "Rows per image (k).") var tokens = 1
    @Option(help: "Seed of the synthetic model (its fingerprint and channel profile).") var modelSeed: UInt64 = 0
    @Option(help: "Index of the first synthetic image.") var first = 0
    @Option(help: "How many records to write.") var records = 100
    @Option(help: "Records per write transaction.") var batch = 10
    @Option(help: "The collection the images join.") var collection = "synthetic"
    @Option(help: "Pause after each batch, in milliseconds.") var pauseMs = 0

    func validate() throws {
        for (option, value) in [("layers", layers), ("kv-heads", kvHeads), ("head-dim", headDim), ("tokens", tokens)] {
            try require(option, value, in: 1...65_536)
        }
        // Each is at most 2^16, so the product of the four fits in Int.
        guard layers * kvHeads * headDim * tokens <= 1 << 26 else {
            throw ValidationError("--layers \(layers) x --kv-heads \(kvHeads) x --head-dim \(headDim) x --tokens \(tokens): a synthetic record holds at most 2^26 values")
        }
        try require("records", records, in: 0...10_000_000)
        try require("first", first, in: 0...(Int.max - records), "--first + --records must not overflow")
        try require("batch", batch, in: 1...1_000_000)
        try require("pause-ms", pauseMs, in: 0...3_600_000, "an hour")
        _ = try types()
    }

    /// The codec and the element type the options name.
    private func types() throws -> (CodecSettings, ValueType) {
        let settings: CodecSettings
        do { settings = try CodecSettings(parsing: codec) } catch { throw ValidationError("--codec '\(codec)': \(error)") }
        guard let dtype = ValueType.allCases.first(where: { $0.name == dtype }) else { throw ValidationError("--dtype '\(dtype)': unknown (F32, F16, BF16)") }
        return (settings, dtype)
    }

    func run() throws {
        let (codec, dtype) = try types()
        let store = try StoreLocation.open(location.path, options: StoreOptions(create: create, codec: create ? codec : nil))
        let model = SyntheticKV.model(layers: layers, kvHeads: kvHeads, headDim: headDim, tokensPerImage: tokens, dtype: dtype, seed: modelSeed)
        try store.register(model)
        for start in stride(from: first, to: first + records, by: batch) {
            let indices = start..<min(first + records, start + batch)
            let encoded = try indices.map { n in
                try store.encode(SyntheticKV.make(layers: layers, tokens: tokens, kvHeads: kvHeads, headDim: headDim,
                                                  seed: UInt64(n), modelSeed: modelSeed),
                                 image: SyntheticKV.imageDigest(n), model: model.fingerprint)
            }
            try store.write { txn in
                for (n, record) in zip(indices, encoded) {
                    try txn.putImage(record.key.image, ImageInfo(byteCount: 0, format: "synthetic", width: 0, height: 0, sourceNames: ["synthetic-\(n)"]))
                    try txn.put(record)
                }
                try txn.append(encoded.map(\.key.image), to: collection)
            }
            if pauseMs > 0 { Thread.sleep(forTimeInterval: Double(pauseMs) / 1000) }
        }
        print("model \(model.fingerprint.hex): wrote \(records) records into \(store.location)")
    }
}
