import Foundation

// MARK: - A model's reference cache (what `hq:ref` records are relative to)

/// One cache per model that the records of a `ref` codec are stored relative to: a record holds
/// `cache - reference`, and a reader adds the reference back. Most of a VoCo cache is the same
/// for every image (at k = 1, about 87% of the keys' energy is their mean over images, and layer
/// 0's keys and values do not depend on the image at all), so the differences quantise with a
/// smaller step at the same bits.
///
/// The reference is the mean of the model's first N records in the store (`hq:...,ref=N`;
/// StoreReferences.swift): a calibration mean of real caches, which docs/store.md measured
/// against references made from the model alone (a neutral image, synthetic images) and found
/// much better. The store keeps it once per model as an ordinary lossless record (shuffle-zstd,
/// format 2, in the model's dtype) under the model's fingerprint and the reserved image digest
/// `image`, so every backend keeps it with no change. It is written once and never replaced;
/// each relative record binds the SHA-256 of the reference record's bytes (its `digest`) into
/// its checksum and names the digest's first 4 bytes (`tag`) in its header, so a record decoded
/// against another reference is refused and the refusal names both.
/// Schemas/record-format.md, "Records relative to a model reference", is the byte-level account.
public struct ModelReference: Sendable, Equatable {
    /// SHA-256 of the 17 ASCII bytes `voco-reference-v1`: the image digest of every model's
    /// reference record. Image digests are SHA-256 of an image file's bytes, and those 17 bytes
    /// are no image, so no ingested image has it.
    public static let image = Digest.sha256(Array("voco-reference-v1".utf8))
    /// Reference records are lossless: shuffle-zstd in the model's dtype, compact header.
    public static let settings = CodecSettings(codec: .shuffleZstd, compactHeader: true)
    /// Bytes of the reference digest a relative record's header names.
    static let tagLength = 4

    /// The model the reference belongs to.
    public let model: Digest
    /// The reference values as a reader decodes them from the record (rounded to the model's
    /// dtype): keys and values each [layers][tokens][kvHeads*headDim].
    public let kv: KVTensors
    /// SHA-256 of the whole reference record as stored: what relative records bind.
    public let digest: Digest

    /// The first bytes of `digest`, as a relative record's header holds them.
    public var tag: [UInt8] { Array(digest.bytes.prefix(Self.tagLength)) }

    /// Where the store keeps `model`'s reference.
    public static func key(model: Digest) -> RecordKey {
        RecordKey(model: model, image: image, codec: settings.codec)
    }

    /// The reference record of `kv` for `model`, its values rounded to `dtype`, and the reference
    /// exactly as a reader of that record gets it.
    public static func make(_ kv: KVTensors, model: Digest, dtype: ValueType) throws -> (record: EncodedRecord, reference: ModelReference) {
        let bytes = try RecordCoder.encode(kv, model: model, image: image, dtype: dtype, settings: settings)
        let reference = try bytes.withUnsafeBytes { try ModelReference(record: $0, model: model) }
        return (EncodedRecord(key: key(model: model), bytes: bytes), reference)
    }

    /// Verifies and decodes the reference record of `model` (checksum, header, body); a record
    /// that is not a lossless, self-contained one is refused with `RecordProblem`.
    public init(record: UnsafeRawBufferPointer, model: Digest) throws {
        let (header, kv) = try RecordCoder.decode(record, model: model, image: Self.image)
        guard header.codec.isLossless else {
            throw RecordProblem("a model reference must be a lossless record; this one is \(header.codec.name)")
        }
        self.model = model
        self.kv = kv
        digest = Digest.sha256(record)
    }

    /// Why a cache of this shape cannot be stored relative to the reference, or nil.
    func mismatch(layers: Int, tokens: Int, kvHeads: Int, headDim: Int) -> String? {
        let mine = [kv.layers, kv.tokens, kv.kvHeads, kv.headDim]
        guard [layers, tokens, kvHeads, headDim] != mine else { return nil }
        return "shape [layers \(layers), tokens \(tokens), kvHeads \(kvHeads), headDim \(headDim)] differs from model \(model.short)'s reference \(mine) (reference \(digest.short))"
    }

    /// The element-wise mean of caches of one shape, summed in Double in the given order and
    /// rounded once to Float; nil when there are none or their shapes differ.
    public static func mean(_ caches: [KVTensors]) -> KVTensors? {
        guard var mean = caches.first, caches.allSatisfy({ $0.shape == mean.shape }) else { return nil }
        let n = Double(caches.count)
        for part in 0..<2 {
            var sum = [Double](repeating: 0, count: mean.count)  // [layers][tokens][channels]
            for cache in caches {
                for (i, x) in (part == 0 ? cache.keys : cache.values).enumerated() { sum[i] += Double(x) }
            }
            let out = sum.map { Float($0 / n) }
            if part == 0 { mean.keys = out } else { mean.values = out }
        }
        return mean
    }

    // MARK: Arithmetic (binary32, the exact operations of the format)

    /// `kv - reference`, element by element in binary32; refuses another shape, and a difference
    /// that leaves the Float32 range.
    func subtract(from kv: KVTensors, image: Digest) throws -> KVTensors {
        if let mismatch = mismatch(layers: kv.layers, tokens: kv.tokens, kvHeads: kv.kvHeads, headDim: kv.headDim) {
            throw StoreError.invalidTensors(image: image, reason: mismatch)
        }
        var difference = kv
        for (name, source, reference) in [("keys", kv.keys, self.kv.keys), ("values", kv.values, self.kv.values)] {
            let out = zip(source, reference).map { $0 - $1 }  // [layers][tokens][channels]
            if let i = out.firstIndex(where: { !$0.isFinite }), source[i].isFinite {
                throw StoreError.invalidTensors(image: image, reason: "\(name)[\(i)] \(source[i]) minus the reference's \(reference[i]) leaves the Float32 range")
            }
            if name == "keys" { difference.keys = out } else { difference.values = out }
        }
        return difference
    }

    /// Adds the reference to decoded keys and values in place (`x = w + r`).
    func add(keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>) {
        kv.keys.withUnsafeBufferPointer { r in for i in r.indices { keys[i] += r[i] } }
        kv.values.withUnsafeBufferPointer { r in for i in r.indices { values[i] += r[i] } }
    }

    /// A tag or digest prefix in hex.
    static func hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { Digest.hexString($0) } }
}

extension RecordKey {
    /// Whether this is the key of a model's reference record, not of an image's record.
    public var isReference: Bool { image == ModelReference.image }
}
