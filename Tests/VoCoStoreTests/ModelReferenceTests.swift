import Foundation
import Testing
@testable import VoCoStore

/// Records relative to a model reference (`hq:...,ref`): the codec round trip, the checksum
/// binding, and the refusals, each naming what is wrong.
@Suite struct ModelReferenceTests {
    static let model = Digest.sha256(Array("reference test model".utf8))
    static let image = SyntheticKV.imageDigest(1)

    /// A reference of `shape` for `model`, made as a store makes it (a lossless F16 record).
    static func reference(layers: Int = 2, tokens: Int, heads: Int, dim: Int, seed: UInt64 = 100,
                          model: Digest = ModelReferenceTests.model) throws -> ModelReference {
        let mean = SyntheticKV.make(layers: layers, tokens: tokens, kvHeads: heads, headDim: dim, seed: seed, modelSeed: 5)
        return try ModelReference.make(mean, model: model, dtype: .f16).reference
    }

    func encode(_ kv: KVTensors, _ settings: CodecSettings, _ reference: ModelReference?, image: Digest = image) throws -> [UInt8] {
        try RecordCoder.encode(kv, model: Self.model, image: image, dtype: .f16, settings: settings, reference: reference)
    }

    func decode(_ record: [UInt8], _ reference: ModelReference?, model: Digest = model, image: Digest = image) throws -> (RecordHeader, KVTensors) {
        try record.withUnsafeBytes { try RecordCoder.decode($0, model: model, image: image, reference: reference) }
    }

    // MARK: - Round trips

    /// Odd head sizes, k = 1...8, several bit widths: a relative record decodes, bit for bit, to
    /// the self-contained hq record of `cache - reference` plus the reference (one binary32
    /// addition per value), and costs 4 header bytes more.
    @Test(arguments: [(1, 7), (3, 12), (2, 32), (4, 1), (1, 6)], [1, 2, 3, 5, 8])
    func aRelativeRecordIsHQOfTheDifferencePlusTheReference(shape: (heads: Int, dim: Int), tokens: Int) throws {
        let reference = try Self.reference(tokens: tokens, heads: shape.heads, dim: shape.dim)
        let kv = SyntheticKV.make(layers: 2, tokens: tokens, kvHeads: shape.heads, headDim: shape.dim, firstPosition: 9,
                                  seed: UInt64(tokens), modelSeed: 5)
        for (k, v) in [(4, 4), (3, 5), (8, 2)] {
            let settings = CodecSettings(codec: .hq, keyBits: k, valueBits: v, referenceImages: 16)
            let record = try encode(kv, settings, reference)
            let (header, back) = try decode(record, reference)
            #expect(header.isRelative && header.referenceTag == reference.tag && header.keyBits == k && header.valueBits == v)
            #expect(back.shape == kv.shape && back.firstPosition == 9 && back.keysBeforeRoPE)

            var difference = kv
            difference.keys = zip(kv.keys, reference.kv.keys).map { $0 - $1 }
            difference.values = zip(kv.values, reference.kv.values).map { $0 - $1 }
            let plain = try encode(difference, CodecSettings(codec: .hq, keyBits: k, valueBits: v), nil)
            let (_, residual) = try decode(plain, nil)
            #expect(back.keys.map(\.bitPattern) == zip(residual.keys, reference.kv.keys).map { ($0 + $1).bitPattern })
            #expect(back.values.map(\.bitPattern) == zip(residual.values, reference.kv.values).map { ($0 + $1).bitPattern })
            #expect(header.headerLength == (try decode(plain, nil).0.headerLength) + 4)
        }
    }

    /// The point of the reference: caches that share most of their values with it (as VoCo
    /// caches share their mean) lose much less at the same bits.
    @Test func aCloseReferenceLowersTheErrorAtTheSameSize() throws {
        let reference = try Self.reference(layers: 4, tokens: 1, heads: 2, dim: 32)
        var kv = reference.kv
        let noise = SyntheticKV.make(layers: 4, tokens: 1, kvHeads: 2, headDim: 32, seed: 7)
        kv.keys = zip(kv.keys, noise.keys).map { $0 + 0.1 * $1 }
        kv.values = zip(kv.values, noise.values).map { $0 + 0.1 * $1 }
        let relative = try encode(kv, CodecSettings(codec: .hq, referenceImages: 16), reference)
        let plain = try encode(kv, CodecSettings(codec: .hq), nil)
        #expect(relative.count <= plain.count + 4 + 8)  // 4 tag bytes (zstd may differ by a few)
        func error(_ back: KVTensors) -> Double {
            zip(back.keys + back.values, kv.keys + kv.values).reduce(0.0) { $0 + pow(Double($1.0 - $1.1), 2) }
        }
        #expect(error(try decode(relative, reference).1) * 10 < error(try decode(plain, nil).1))
    }

    @Test func zerosAndAnIdenticalCacheSurvive() throws {
        let reference = try Self.reference(tokens: 2, heads: 2, dim: 8)
        // The reference itself: every difference is +0, so every value decodes to the reference exactly.
        let (_, same) = try decode(try encode(reference.kv, CodecSettings(codec: .hq, referenceImages: 1), reference), reference)
        #expect(same.keys.map(\.bitPattern) == reference.kv.keys.map(\.bitPattern))
        #expect(same.values.map(\.bitPattern) == reference.kv.values.map(\.bitPattern))
        var zeros = reference.kv
        zeros.keys = zeros.keys.map { _ in 0 }
        zeros.values = zeros.values.map { _ in 0 }
        let (_, back) = try decode(try encode(zeros, CodecSettings(codec: .hq, keyBits: 8, valueBits: 8, referenceImages: 1), reference), reference)
        // Zeros are -reference away from it: at 8 bits they come back within 1% (RMS) of that distance.
        let error = (back.keys + back.values).reduce(0.0) { $0 + Double($1 * $1) }
        let distance = (reference.kv.keys + reference.kv.values).reduce(0.0) { $0 + Double($1 * $1) }
        #expect(error < distance * 1e-4)
    }

    // MARK: - Refusals

    @Test func encodingNeedsTheModelsReferenceOfTheCachesShape() throws {
        let kv = SyntheticKV.make(layers: 2, tokens: 1, kvHeads: 2, headDim: 8, seed: 3)
        let settings = CodecSettings(codec: .hq, referenceImages: 16)
        #expect { _ = try encode(kv, settings, nil) } throws: { "\($0)".contains("none was given") && "\($0)".contains(Self.model.hex) }
        let other = Digest.sha256(Array("another model".utf8))
        let theirs = try Self.reference(tokens: 1, heads: 2, dim: 8, model: other)
        #expect { _ = try encode(kv, settings, theirs) } throws: { "\($0)".contains(other.hex) }
        for (tokens, heads, dim) in [(2, 2, 8), (1, 1, 16), (1, 2, 4)] {
            let wrong = try Self.reference(tokens: tokens, heads: heads, dim: dim)
            #expect { _ = try encode(kv, settings, wrong) } throws: { error in
                "\(error)".contains("differs from model") && "\(error)".contains(wrong.digest.short) && "\(error)".contains(Self.image.hex)
            }
        }
        // A difference that leaves the Float32 range is refused by name, not stored as infinity.
        var huge = kv
        huge.keys[3] = 3e38
        var far = SyntheticKV.make(layers: 2, tokens: 1, kvHeads: 2, headDim: 8, seed: 3)
        far.keys[3] = -3e38
        let farReference = try ModelReference.make(far, model: Self.model, dtype: .f32).reference
        #expect { _ = try encode(huge, settings, farReference) } throws: { "\($0)".contains("keys[3]") && "\($0)".contains("Float32 range") }
    }

    /// A relative record is refused without its reference and against another one, by name;
    /// and, like every format 2 record, under another key.
    @Test func theChecksumBindsTheReference() throws {
        let reference = try Self.reference(tokens: 1, heads: 2, dim: 8)
        let kv = SyntheticKV.make(layers: 2, tokens: 1, kvHeads: 2, headDim: 8, seed: 4)
        let record = try encode(kv, CodecSettings(codec: .hq, referenceImages: 16), reference)

        #expect { _ = try decode(record, nil) } throws: { error in
            "\(error)".contains("missing") && "\(error)".contains(ModelReference.key(model: Self.model).description)
                && "\(error)".contains(ModelReference.hex(reference.tag))
        }
        let other = try Self.reference(tokens: 1, heads: 2, dim: 8, seed: 101)
        #expect(other.tag != reference.tag)
        #expect { _ = try decode(record, other) } throws: { error in
            "\(error)".contains("written against reference \(ModelReference.hex(reference.tag))") && "\(error)".contains(other.digest.hex)
        }
        let foreign = try Self.reference(tokens: 1, heads: 2, dim: 8, model: Digest.sha256(Array("x".utf8)))
        #expect { _ = try decode(record, foreign) } throws: { "\($0)".contains("the reference given is model") }
        #expect { _ = try decode(record, reference, image: SyntheticKV.imageDigest(2)) } throws: { "\($0)".contains("checksum mismatch") }

        // A reference with the record's tag but other values (its digest differs past the tag):
        // the checksum, which binds the whole digest, refuses it.
        var forged = record
        let covered = Array(record[0..<(record.count - 16)])
        let digest = Digest.sha256(Array("forged".utf8))
        forged.replaceSubrange((record.count - 16)..., with: covered.withUnsafeBytes {
            CompactHeader.checksum($0, model: Self.model, image: Self.image, reference: digest)
        })
        #expect { _ = try decode(forged, reference) } throws: { "\($0)".contains("checksum mismatch") }
    }

    /// The header bytes record-format.md shows: flag bit 2, the 4-byte tag after hq's bit widths,
    /// and the checksum over model, image, reference digest and record.
    @Test func theTagAndChecksumAreWhereTheSchemaSays() throws {
        let reference = try Self.reference(layers: 4, tokens: 1, heads: 2, dim: 32)
        let kv = SyntheticKV.make(layers: 4, tokens: 1, kvHeads: 2, headDim: 32, firstPosition: 65, seed: 6)
        let record = try encode(kv, CodecSettings(codec: .hq, referenceImages: 16), reference)
        #expect(Array(record[0..<5]) == [0x56, 0x4b, 2, 5, 2])
        #expect(record[5] & 4 == 4 && record[5] & ~7 == 0)
        #expect(Array(record[6..<12]) == [4, 2, 32, 1, 65, 0x44])
        #expect(Array(record[12..<16]) == Array(reference.digest.bytes.prefix(4)))
        #expect(try decode(record, reference).0.headerLength == 16)
        let hashed = Self.model.bytes + Self.image.bytes + reference.digest.bytes + Array(record[0..<(record.count - 16)])
        #expect(Array(Digest.sha256(hashed).bytes.prefix(16)) == Array(record.suffix(16)))
        // The reserved image digest record-format.md gives, and the reference digest: the SHA-256
        // of the reference record's bytes.
        #expect(ModelReference.image.hex == "4f2edc454140750d1e68a444c0364cc1df2e54f416b830efef670ac3d1f44c52")
        let made = try ModelReference.make(reference.kv, model: Self.model, dtype: .f16)
        #expect(made.reference.digest == Digest.sha256(made.record.bytes) && made.record.key.image == ModelReference.image)
    }

    /// Every truncation and every byte change of a relative record is refused, never trapped.
    @Test func damagedRelativeRecordsAreRefused() throws {
        let reference = try Self.reference(tokens: 2, heads: 2, dim: 4)
        let kv = SyntheticKV.make(layers: 2, tokens: 2, kvHeads: 2, headDim: 4, firstPosition: 200, seed: 8)
        for spec in ["hq:ref", "hq:k=3,v=7,ref=2"] {
            let record = try encode(kv, try CodecSettings(parsing: spec), reference)
            for length in 0..<record.count {
                #expect(throws: RecordProblem.self, "\(spec) cut to \(length)") { _ = try decode(Array(record[0..<length]), reference) }
            }
            for offset in 0..<record.count {
                for flip: UInt8 in [0x01, 0x80, 0xff] {
                    var damaged = record
                    damaged[offset] ^= flip
                    #expect(throws: (any Error).self, "\(spec) byte \(offset) ^ \(flip)") { _ = try decode(damaged, reference) }
                }
            }
        }
        // Flag bit 2 on another codec's record is refused by name.
        var zstd = try encode(kv, CodecSettings(codec: .zstd, compactHeader: true), nil)
        zstd[5] |= 4
        #expect { _ = try zstd.withUnsafeBytes { try RecordHeader.decode($0, model: Self.model, image: Self.image) } } throws: {
            "\($0)".contains("only hq records can")
        }
    }

    /// A reference record must be lossless; a damaged one is refused.
    @Test func aReferenceIsALosslessRecord() throws {
        let kv = SyntheticKV.make(layers: 2, tokens: 1, kvHeads: 2, headDim: 8, seed: 9)
        let lossy = try RecordCoder.encode(kv, model: Self.model, image: ModelReference.image, dtype: .f16, settings: CodecSettings(codec: .hq))
        #expect { _ = try lossy.withUnsafeBytes { try ModelReference(record: $0, model: Self.model) } } throws: { "\($0)".contains("lossless") }
        var (record, _) = try ModelReference.make(kv, model: Self.model, dtype: .f16)
        var bytes = record.bytes
        bytes[bytes.count / 2] ^= 1
        record = EncodedRecord(key: record.key, bytes: bytes)
        #expect(throws: RecordProblem.self) { _ = try record.bytes.withUnsafeBytes { try ModelReference(record: $0, model: Self.model) } }
    }

    // MARK: - Settings

    @Test func refParsesAndIsOnlyForHQ() throws {
        #expect(try CodecSettings(parsing: "hq:ref") == CodecSettings(codec: .hq, referenceImages: 16))
        #expect(try CodecSettings(parsing: "hq:k=3,v=5,ref=8") == CodecSettings(codec: .hq, keyBits: 3, valueBits: 5, referenceImages: 8))
        #expect(try CodecSettings(parsing: "hq:ref").description.contains("ref=16"))
        #expect(!(try CodecSettings(parsing: "hq")).relative)
        for (bad, says) in [("q4:ref", "not an option"), ("shuffle-zstd:ref", "not an option"), ("hq:ref=0", "1...1024"),
                            ("hq:ref=-3", "1...1024"), ("hq:ref=99999", "1...1024"), ("hq:ref=x", "not an option")] {
            #expect { _ = try CodecSettings(parsing: bad) } throws: { "\($0)".contains(says) }
        }
        let settings = try CodecSettings(parsing: "hq:k=5,ref=4")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(settings)
        #expect(String(decoding: json, as: UTF8.self) == #"{"codec":"hq","groupSize":0,"keyBits":5,"referenceImages":4,"valueBits":4,"zstdLevel":3}"#)
        #expect(try JSONDecoder().decode(CodecSettings.self, from: json) == settings)
        // What a relative store writes until the model has its reference.
        #expect(settings.calibration == CodecSettings(codec: .hq, keyBits: 8, valueBits: 8))
    }
}
