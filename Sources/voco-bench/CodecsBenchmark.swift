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
        options k=BITS, v=BITS (hq), group=N (q4), level=N, compact. The 7B columns are record sizes of \
        32-layer, 32 x 128 synthetic caches (SyntheticKV), k = 1.
        """
    )

    static let defaultCodecs = ["shuffle-zstd", "zstd", "int8", "q4", "shuffle-zstd:compact", "hq:k=8,v=8", "hq:k=6,v=6", "hq:k=5,v=5",
                                "hq:k=5,v=4", "hq:k=4,v=5", "hq", "hq:k=3,v=4", "hq:k=3,v=3"]

    @Option(help: "A split folder holding questions.jsonl, or the file itself.") var split: String
    @Option(help: "Model directory (default: $VOCO_MODEL, else Models/voco-shapes).") var model: String?
    @Option(name: .customLong("codec"), help: "A codec spec; repeat for several (the first is the baseline).") var codecs: [String] = Self.defaultCodecs
    @Option(help: "A split whose mean cache is the reference of the --relative codecs (a what-if, not a record format).") var reference: String?
    @Option(name: .customLong("relative"), help: "A codec spec measured relative to the --reference mean; repeat for several.") var relatives: [String] = []
    @Option(help: "Only the first N questions.") var limit: Int?

    func validate() throws {
        if let limit { try OptionCheck.require("limit", limit, in: 1...Int.max) }
        guard !codecs.isEmpty else { throw ValidationError("--codec: give at least one codec (the first is the baseline)") }
        for spec in codecs + relatives {
            do { _ = try CodecSettings(parsing: spec) } catch { throw ValidationError("--codec '\(spec)': \(error)") }
        }
        guard relatives.isEmpty || reference != nil else { throw ValidationError("--relative needs --reference SPLIT") }
    }

    func run() throws {
        var split = try EvaluationSplit(path: split)
        if let limit { split = EvaluationSplit(path: split.path, questions: Array(split.questions.prefix(limit))) }
        let directory = model ?? DefaultModel.path()
        let answering = try AnsweringModel(directory: directory)
        let fingerprint = Digest.sha256(Array("voco-bench codecs: \(directory)".utf8))
        let valueType = try CodecEvaluation.recordType(answering)
        var list = try codecs.map { CacheCodec.record(try CodecSettings(parsing: $0), model: fingerprint, dtype: valueType) }
        if let reference {
            let referenceSplit = try EvaluationSplit(path: reference)
            guard let mean = try CodecEvaluation.mean(try CodecEvaluation.caches(answering, split: referenceSplit).map(\.cache), model: answering) else {
                throw ValidationError("\(reference): no images")
            }
            let name = "the mean of \((reference as NSString).lastPathComponent)"
            list += try relatives.map { CacheCodec.record(try CodecSettings(parsing: $0), model: fingerprint, dtype: valueType).relative(to: mean, named: name) }
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
