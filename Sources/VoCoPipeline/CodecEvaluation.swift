import Foundation
import SafeTensors
import VoCoModel
import VoCoStore

// MARK: - A codec as the evaluation sees it

/// A way of storing an image's cache: its record bytes and what a reader gets back.
public struct CacheCodec: Sendable {
    public var name: String
    /// The store's settings, when the codec is one (nil for the engine's own cache).
    public var settings: CodecSettings?
    /// The record's size in bytes and the decoded cache.
    public var roundTrip: @Sendable (_ kv: KVTensors, _ image: Digest) throws -> (bytes: Int, decoded: KVTensors)

    public init(name: String, settings: CodecSettings? = nil,
                roundTrip: @escaping @Sendable (KVTensors, Digest) throws -> (bytes: Int, decoded: KVTensors)) {
        self.name = name
        self.settings = settings
        self.roundTrip = roundTrip
    }

    /// The store's codec: record bytes made exactly as a store with `settings` writes them for a
    /// model of `dtype`, then verified and decoded as a store reads them (under the same key).
    /// A `relative` codec needs the model's reference as the store keeps it (`ModelReference.make`),
    /// named in the row.
    public static func record(_ settings: CodecSettings, model: Digest, dtype: ValueType,
                              reference: (name: String, value: ModelReference)? = nil) -> CacheCodec {
        let used = settings.relative ? reference : nil
        return CacheCodec(name: settings.description + (used.map { ", reference: \($0.name)" } ?? ""), settings: settings) { kv, image in
            let record = try RecordCoder.encode(kv, model: model, image: image, dtype: dtype, settings: settings, reference: used?.value)
            let (_, decoded) = try record.withUnsafeBytes { try RecordCoder.decode($0, model: model, image: image, reference: used?.value) }
            return (record.count, decoded)
        }
    }

    /// The engine's Float32 cache as it is, with no record.
    public static let none = CacheCodec(name: "none (the engine's Float32 cache)") { kv, _ in (kv.count * 2 * 4, kv) }
}

// MARK: - Running a split through each codec

/// What one codec did to a split: sizes, value errors, and the answers against the reference.
public struct CodecTrial: Sendable {
    public var codec: String
    /// Mean record bytes over the split's images.
    public var bytesPerRecord: Double
    /// The cache's values at 2 bytes each (raw F16), per image.
    public var rawF16Bytes: Int
    /// RMS(decoded - engine) / RMS(engine), over every image, keys and values apart.
    public var keyRelativeRMS: Double
    public var valueRelativeRMS: Double
    public var report: EvaluationReport
    /// Answers that differ from the reference codec's; right -> wrong and wrong -> right among them.
    public var changed = 0
    public var rightToWrong = 0
    public var wrongToRight = 0
    /// Overall accuracy minus the reference's, in points.
    public var accuracyChange = 0.0
    /// Mean record bytes of a 7B-shaped k = 1 cache (SyntheticKV), when measured.
    public var bytes7B: Double?

    public var ratio: Double { Double(rawF16Bytes) / bytesPerRecord }
}

public enum CodecEvaluation {
    /// The cache of every image of `split`, as `KVTensors` in path order.
    public static func caches(_ model: AnsweringModel, split: EvaluationSplit) throws -> [(path: String, cache: VoCoCache)] {
        try model.caches(of: split).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The element type a store keeps this model's caches in: that of its weights.
    public static func recordType(_ model: AnsweringModel) throws -> ValueType {
        guard let dtype = try TensorDirectory(directory: model.directory).dominantFloatType.flatMap(ValueType.init) else {
            throw PipelineError.cacheShape(reason: "\(model.directory): the weights are not F32, F16 or BF16, so no record dtype follows from them")
        }
        return dtype
    }

    /// Compresses every image of `split` once, then for each codec puts every cache through its
    /// round trip and answers every question over the decoded caches. The first codec is the
    /// one answers are compared with.
    public static func run(_ model: AnsweringModel, split: EvaluationSplit, caches: [(path: String, cache: VoCoCache)],
                           codecs: [CacheCodec], maxNewTokens: Int = 8, progress: ((String) -> Void)? = nil) throws -> [CodecTrial] {
        var trials: [CodecTrial] = []
        for codec in codecs {
            var decoded: [String: VoCoCache] = [:]
            var bytes = 0, raw = 0
            var keyError = ErrorSum(), valueError = ErrorSum()
            for (n, (path, cache)) in caches.enumerated() {
                let kv = try model.storeTensors(cache)
                let (size, back) = try codec.roundTrip(kv, Digest.sha256(Array("codec evaluation image \(n)".utf8)))
                bytes += size
                raw = kv.count * 2 * 2
                keyError.add(back.keys, reference: cache.keys)
                valueError.add(back.values, reference: cache.values)
                decoded[path] = try model.engineCache(back)
            }
            let report = try model.evaluate(split, caches: decoded, maxNewTokens: maxNewTokens)
            var trial = CodecTrial(codec: codec.name, bytesPerRecord: Double(bytes) / Double(max(caches.count, 1)), rawF16Bytes: raw,
                                   keyRelativeRMS: keyError.relative, valueRelativeRMS: valueError.relative, report: report)
            if let reference = trials.first?.report { trial.compare(with: reference) }
            if let settings = codec.settings { trial.bytes7B = try sevenBillionRecordBytes(settings) }
            trials.append(trial)
            progress?("\(codec.name): \(report.overall.correct)/\(report.overall.total), \(trial.changed) answers changed")
        }
        return trials
    }

    /// Raw F16 bytes of a 7B-shaped k = 1 cache: 32 layers, K and V, 32 KV heads of 128.
    public static let sevenBillionRawBytes = 32 * 2 * 32 * 128 * 2

    /// Mean record bytes of four 7B-shaped k = 1 caches (SyntheticKV, F16 model) with `settings`;
    /// a relative codec's reference is a fifth cache of the same synthetic model (seed 1000).
    public static func sevenBillionRecordBytes(_ settings: CodecSettings) throws -> Double {
        let model = Digest.sha256(Array("7B-shaped synthetic model".utf8))
        func cache(_ seed: UInt64) -> KVTensors {
            SyntheticKV.make(layers: 32, tokens: 1, kvHeads: 32, headDim: 128, firstPosition: 577, seed: seed, modelSeed: 1)
        }
        let reference = settings.relative ? try ModelReference.make(cache(1000), model: model, dtype: .f16).reference : nil
        var total = 0
        for seed in 0..<4 {
            total += try RecordCoder.encode(cache(UInt64(seed)), model: model, image: SyntheticKV.imageDigest(seed), dtype: .f16,
                                            settings: settings, reference: reference).count
        }
        return Double(total) / 4
    }

    /// The table of docs/store.md: one row per codec.
    public static func markdown(_ trials: [CodecTrial]) -> String {
        var lines = ["| codec | bytes/record | vs F16 | 7B k = 1 bytes | 7B vs F16 | K rel. RMS | V rel. RMS | answers changed | right→wrong | wrong→right | accuracy | change |",
                     "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for t in trials {
            let seven = t.bytes7B.map { (String(format: "%.0f", $0), String(format: "%.2f×", Double(sevenBillionRawBytes) / $0)) } ?? ("-", "-")
            let cells = [t.codec, String(format: "%.0f", t.bytesPerRecord), String(format: "%.2f×", t.ratio), seven.0, seven.1,
                         String(format: "%.1e", t.keyRelativeRMS), String(format: "%.1e", t.valueRelativeRMS),
                         "\(t.changed)", "\(t.rightToWrong)", "\(t.wrongToRight)",
                         String(format: "%.1f%%", t.report.overall.percent), String(format: "%+.1f", t.accuracyChange)]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }
}

extension CodecTrial {
    mutating func compare(with reference: EvaluationReport) {
        (changed, rightToWrong, wrongToRight) = (0, 0, 0)
        for (id, mine) in report.predictions {
            guard let theirs = reference.predictions[id], mine.answer != theirs.answer else { continue }
            changed += 1
            if theirs.correct == true, mine.correct != true { rightToWrong += 1 }
            if theirs.correct != true, mine.correct == true { wrongToRight += 1 }
        }
        accuracyChange = report.overall.percent - reference.overall.percent
    }
}

/// Sums of squared errors and of squared reference values.
private struct ErrorSum {
    var error = 0.0, norm = 0.0

    mutating func add(_ values: [Float], reference: [Float]) {
        for (x, y) in zip(values, reference) {
            let d = Double(x) - Double(y)
            error += d * d
            norm += Double(y) * Double(y)
        }
    }

    var relative: Double { norm > 0 ? (error / norm).squareRoot() : 0 }
}
