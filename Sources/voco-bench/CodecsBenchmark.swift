import ArgumentParser
import Foundation
import VoCoCommands
import VoCoPipeline
import VoCoStore

/// Each codec through the real engine: every image of a split compressed once, its cache put
/// through the codec's record round trip (CodecEvaluation), every question answered over the
/// decoded caches; answers compared with the first codec's (lossless shuffle-zstd by default).
struct CodecsBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codecs",
        abstract: "Record codecs on a question split: bytes per record, value error, answers changed and accuracy against a lossless record.",
        discussion: """
        Codec specs: NAME[:OPTION,...] with NAME one of \(RecordCodec.allCases.map(\.name).joined(separator: ", ")); \
        options k=BITS, v=BITS, ref[=N] (hq), group=N (q4), level=N, compact. A ref codec stores each cache minus the \
        model's reference; it is measured once per --reference. \
        The 7B columns are record sizes of 32-layer, 32 x 128 synthetic caches (SyntheticKV), k = 1.
        """
    )

    static let defaultCodecs = ["shuffle-zstd", "zstd", "int8", "q4", "shuffle-zstd:compact", "hq:k=8,v=8", "hq:k=6,v=6", "hq:k=5,v=5",
                                "hq:k=5,v=4", "hq:k=4,v=5", "hq", "hq:k=3,v=4", "hq:k=3,v=3"]
    /// Added to the defaults when a --reference is given.
    static let defaultReferenceCodecs = ["hq:k=5,v=4,ref", "hq:k=4,v=5,ref", "hq:ref", "hq:k=3,v=5,ref", "hq:k=3,v=4,ref", "hq:k=3,v=3,ref"]

    @Option(help: "A split folder holding questions.jsonl, or the file itself.") var split: String
    @Option(help: "Model directory (default: $VOCO_MODEL, else Models/voco-shapes).") var model: String?
    @Option(name: .customLong("codec"), help: "A codec spec; repeat for several (the first is the baseline). Default: shuffle-zstd, the other store codecs, and hq at several bit widths (with ref when --reference is given).")
    var givenCodecs: [String] = []
    @Option(name: .customLong("reference"),
            help: "The reference of the ref codecs: store:SPLIT[:N] (what a store keeps: the mean of the split's first N images' 8-bit records, N = 16 when not given), mean:SPLIT[:N] (their exact mean), neutral, colours or noise (made from the model alone); repeat to measure several.")
    var references: [String] = []
    @Option(help: "Only the first N questions.") var limit: Int?

    var codecs: [String] {
        givenCodecs.isEmpty ? Self.defaultCodecs + (references.isEmpty ? [] : Self.defaultReferenceCodecs) : givenCodecs
    }

    func validate() throws {
        if let limit { try OptionCheck.require("limit", limit, in: 1...Int.max) }
        for spec in codecs {
            do { _ = try CodecSettings(parsing: spec) } catch { throw ValidationError("--codec '\(spec)': \(error)") }
        }
        for spec in references where ReferenceSource(parsing: spec) == nil {
            throw ValidationError("--reference '\(spec)': use store:SPLIT[:N], mean:SPLIT[:N] (N >= 1), neutral, colours or noise")
        }
        if try codecs.contains(where: { try CodecSettings(parsing: $0).relative }), references.isEmpty {
            throw ValidationError("a ref codec needs --reference (store:out/data/val is what a store would keep)")
        }
    }

    func run() throws {
        var split = try EvaluationSplit(path: split)
        if let limit { split = EvaluationSplit(path: split.path, questions: Array(split.questions.prefix(limit))) }
        let directory = model ?? DefaultModel.path()
        let answering = try AnsweringModel(directory: directory)
        let fingerprint = Digest.sha256(Array("voco-bench codecs: \(directory)".utf8))
        let valueType = try CodecEvaluation.recordType(answering)
        let settings = try codecs.map { try CodecSettings(parsing: $0) }
        // Each reference as a store keeps it: a lossless record in the model's dtype. `store:`
        // puts each cache through the store's 8-bit calibration record first.
        let calibration = CacheCodec.record(CodecSettings(codec: .hq).calibration, model: fingerprint, dtype: valueType)
        let sources = references.compactMap(ReferenceSource.init(parsing:))
        let made: [(name: String, value: ModelReference)] = try settings.contains(where: \.relative) ? sources.map { source in
            let kv = try source.tensors(answering) { try calibration.roundTrip($0, ModelReference.image).decoded }
            return (source.description, try ModelReference.make(kv, model: fingerprint, dtype: valueType).reference)
        } : []
        let list = settings.flatMap { s in
            s.relative ? made.map { CacheCodec.record(s, model: fingerprint, dtype: valueType, reference: $0) }
                : [CacheCodec.record(s, model: fingerprint, dtype: valueType)]
        }
        let start = Date()
        let caches = try CodecEvaluation.caches(answering, split: split)
        print("voco-bench codecs: \(directory), \(split.path): \(split.questions.count) questions, \(caches.count) images, \(valueType.name) records")
        let trials = try CodecEvaluation.run(answering, split: split, caches: caches, codecs: list) { line in
            FileHandle.standardError.write(Data("\(line)\n".utf8))
        }
        print(CodecEvaluation.markdown(trials))
        print(String(format: "(%.0f s)", Date().timeIntervalSince(start)))
    }
}
