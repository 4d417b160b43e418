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
    @Option(help: "Codec of a new store: shuffle-zstd, zstd, int8, q4.") var codec = "shuffle-zstd"
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

    func run() throws {
        guard let codec = RecordCodec(name: codec) else { throw ValidationError("unknown codec '\(codec)'") }
        guard let dtype = ValueType.allCases.first(where: { $0.name == dtype }) else { throw ValidationError("unknown dtype '\(dtype)'") }
        guard records >= 0, batch > 0 else { throw ValidationError("--records must be >= 0 and --batch > 0") }
        let store = try StoreOpening.open(location.path, options: StoreOptions(create: create, codec: create ? CodecSettings(codec: codec) : nil))
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
            if pauseMs > 0 { usleep(UInt32(pauseMs) * 1000) }
        }
        print("model \(model.fingerprint.hex): wrote \(records) records into \(store.location)")
    }
}
