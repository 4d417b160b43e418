import Foundation
import SafeTensors
import Testing
@testable import VoCoStore

/// Codec 5 `hq` and record format 2 (the compact header).
@Suite struct HadamardCodecTests {
    static let model = Digest.sha256(Array("hq test model".utf8))
    static let image = SyntheticKV.imageDigest(1)

    func roundTrip(_ kv: KVTensors, _ settings: CodecSettings, dtype: ValueType = .f16) throws -> (RecordHeader, KVTensors, Int) {
        let record = try RecordCoder.encode(kv, model: Self.model, image: Self.image, dtype: dtype, settings: settings)
        let (header, back) = try record.withUnsafeBytes { try RecordCoder.decode($0, model: Self.model, image: Self.image) }
        return (header, back, record.count)
    }

    // MARK: - Round trips

    /// Odd head sizes (no rotation, blocks of 4, of 1), k = 1...8, every bit width: each group's
    /// squared error is at most that of plain quantisation at the group's largest magnitude,
    /// whose every value is within one half-step (the encoder keeps the best of its candidates).
    @Test(arguments: [(1, 7), (3, 12), (2, 32), (4, 1), (1, 6)], [1, 2, 5, 8])
    func everyGroupIsAsGoodAsPlainQuantisation(shape: (heads: Int, dim: Int), tokens: Int) throws {
        let kv = SyntheticKV.make(layers: 2, tokens: tokens, kvHeads: shape.heads, headDim: shape.dim, firstPosition: 3, seed: UInt64(tokens), modelSeed: 5)
        for (keyBits, valueBits) in [(2, 8), (3, 3), (4, 4), (5, 4), (8, 8), (6, 7)] {
            let (header, back, _) = try roundTrip(kv, CodecSettings(codec: .hq, keyBits: keyBits, valueBits: valueBits))
            #expect(header.format == 2 && header.keyBits == keyBits && header.valueBits == valueBits)
            #expect(back.shape == kv.shape && back.firstPosition == 3 && back.keysBeforeRoPE)
            for (original, decoded, bits) in [(kv.keys, back.keys, keyBits), (kv.values, back.values, valueBits)] {
                for start in stride(from: 0, to: original.count, by: shape.dim) {
                    let group = start..<(start + shape.dim)
                    let largest = original[group].map(abs).max()!
                    let halfStep = Double(largest) / Double((1 << bits) - 1) * (1 + 0x1p-8)  // bfloat16 rounding
                    let error = group.reduce(0.0) { $0 + pow(Double(decoded[$1] - original[$1]), 2) }
                    #expect(error <= Double(shape.dim) * halfStep * halfStep * 1.001 + 1e-12,
                            "K\(keyBits)/V\(valueBits) \(shape) group at \(start): error \(error)")
                }
            }
        }
    }

    @Test func rotationIsUsedWhereItHelpsAndTheErrorFallsWithEveryBit() throws {
        // A 7B-like head: 128 channels with outlier channels (SyntheticKV's keys).
        let kv = SyntheticKV.make(layers: 4, tokens: 1, kvHeads: 4, headDim: 128, seed: 9, modelSeed: 1)
        var previous = Double.infinity
        for bits in 2...8 {
            let settings = CodecSettings(codec: .hq, keyBits: bits, valueBits: bits)
            let record = try RecordCoder.encode(kv, model: Self.model, image: Self.image, dtype: .f16, settings: settings)
            let (header, back) = try record.withUnsafeBytes { try RecordCoder.decode($0, model: Self.model, image: Self.image) }
            let error = relativeError(back.keys, kv.keys)
            #expect(error < previous, "\(bits) bits: \(error)")
            previous = error
            if bits == 4 {
                // The outlier channels make plain quantisation of a key head poor: most key groups rotate.
                let body = try bodyOf(record, header)
                let rotated = (0..<(4 * 4)).filter { g in  // key groups are the first 4 of every layer's 8
                    let index = (g / 4) * 8 + g % 4
                    return body[2 * index + 1] & 0x80 != 0
                }
                #expect(rotated.count > 8, "\(rotated.count) of 16 key groups rotated")
            }
        }
        #expect(previous < 0.01)
    }

    @Test func zerosSubnormalsAndHugeValuesSurvive() throws {
        var kv = SyntheticKV.make(layers: 1, tokens: 2, kvHeads: 2, headDim: 8, seed: 2)
        for i in 0..<8 { kv.keys[i] = 0; kv.values[i] = 0 }              // a whole group of zeros
        for i in 8..<16 { kv.keys[i] = Float.leastNonzeroMagnitude * Float(i) }  // subnormals
        for i in 16..<24 { kv.values[i] = (i % 2 == 0 ? 1 : -1) * 3e38 }  // near the Float32 limit
        for bits in [2, 4, 8] {
            let (_, back, _) = try roundTrip(kv, CodecSettings(codec: .hq, keyBits: bits, valueBits: bits))
            #expect(back.keys[0..<8].allSatisfy { $0 == 0 && $0.sign == .plus })
            #expect(back.values[0..<8].allSatisfy { $0 == 0 && $0.sign == .plus })
            #expect(back.keys.allSatisfy(\.isFinite) && back.values.allSatisfy(\.isFinite))
            for i in 8..<16 { #expect(abs(back.keys[i] - kv.keys[i]) <= Float.leastNonzeroMagnitude * 16) }
            for i in 16..<24 { #expect(abs(back.values[i] - kv.values[i]) <= 3e38 / Float((1 << bits) - 1) * 1.01) }
        }
    }

    @Test func infinitiesAndNaNAreRefusedByName() throws {
        for (part, bad) in [("keys", Float.infinity), ("values", -.infinity), ("values", .nan)] {
            var kv = SyntheticKV.make(layers: 1, tokens: 1, kvHeads: 1, headDim: 4, seed: 3)
            if part == "keys" { kv.keys[2] = bad } else { kv.values[2] = bad }
            #expect {
                _ = try RecordCoder.encode(kv, model: Self.model, image: Self.image, dtype: .f16, settings: CodecSettings(codec: .hq))
            } throws: { error in
                "\(error)".contains("\(part)[2]") && "\(error)".contains(Self.image.hex)
            }
        }
    }

    /// The body is never larger than the values in F16 once a head has 2 or more channels at 8
    /// bits (D code bytes and 2 parameter bytes against 2 * D), and the old int8's problem at k = 1 is gone.
    @Test(arguments: [2, 3, 8, 32, 128])
    func eightBitsAreNeverLargerThanF16(headDim: Int) throws {
        let kv = SyntheticKV.make(layers: 2, tokens: 1, kvHeads: 2, headDim: headDim, seed: 4)
        let (header, _, _) = try roundTrip(kv, CodecSettings(codec: .hq, keyBits: 8, valueBits: 8))
        #expect(header.bodyLength <= header.rawLength)
    }

    /// The sizes docs/store.md quotes for a k = 1 record of the bundled model's shape.
    @Test func aBundledModelRecordSpends28BytesOnHeaderAndChecksum() throws {
        let kv = SyntheticKV.make(layers: 4, tokens: 1, kvHeads: 2, headDim: 32, firstPosition: 65, seed: 5)
        let (header, _, size) = try roundTrip(kv, CodecSettings(codec: .hq))
        #expect(header.headerLength == 12 && header.checksumLength == 16)
        #expect(header.bodyLength == 16 * 2 + 512 * 4 / 8)  // 16 two-byte parameters, 512 codes of 4 bits
        #expect(size <= 12 + header.bodyLength + 16)
    }

    // MARK: - Settings

    @Test func specsParseAndBadOnesAreRefusedByName() throws {
        #expect(try CodecSettings(parsing: "hq") == CodecSettings(codec: .hq, keyBits: 4, valueBits: 4))
        #expect(try CodecSettings(parsing: "hq:k=5,v=3,level=9") == CodecSettings(codec: .hq, zstdLevel: 9, keyBits: 5, valueBits: 3))
        #expect(try CodecSettings(parsing: "q4:group=64") == CodecSettings(codec: .q4, groupSize: 64))
        #expect(try CodecSettings(parsing: "shuffle-zstd:compact").compactHeader)
        for (bad, says) in [("hq:k=9", "2...8"), ("hq:k=1,v=4", "2...8"), ("lz4", "unknown codec"), ("q4:k=4", "not an option"),
                            ("hq:group=4", "not an option"), ("zstd:level=99", "zstd level"), ("hq:k=", "not an option")] {
            #expect { _ = try CodecSettings(parsing: bad) } throws: { "\($0)".contains(says) }
        }
    }

    @Test func theJSONOfTheOlderCodecsIsUnchangedAndHQsKeepsItsBits() throws {
        let old = String(decoding: try sortedJSON(CodecSettings(codec: .q4)), as: UTF8.self)
        #expect(old == #"{"codec":"q4","groupSize":32,"zstdLevel":3}"#)
        let hq = CodecSettings(codec: .hq, keyBits: 5, valueBits: 3)
        let json = try sortedJSON(hq)
        #expect(String(decoding: json, as: UTF8.self) == #"{"codec":"hq","groupSize":0,"keyBits":5,"valueBits":3,"zstdLevel":3}"#)
        #expect(try JSONDecoder().decode(CodecSettings.self, from: json) == hq)
        let compact = CodecSettings(codec: .zstd, compactHeader: true)
        #expect(try JSONDecoder().decode(CodecSettings.self, from: sortedJSON(compact)) == compact)
    }

    // MARK: - Format 2 bytes

    /// The header bytes record-format.md shows, field by field.
    @Test func theCompactHeaderIsWhereTheSchemaSays() throws {
        let kv = SyntheticKV.make(layers: 4, tokens: 1, kvHeads: 2, headDim: 32, firstPosition: 300, seed: 6)
        let record = try RecordCoder.encode(kv, model: Self.model, image: Self.image, dtype: .bf16, settings: CodecSettings(codec: .hq, keyBits: 5, valueBits: 3))
        // "VK", version 2, codec 5, dtype 3 (BF16), flags (bit 0 K before RoPE, bit 1 zstd payload),
        // varints 4, 2, 32, 1, 300 (0xac 0x02), then the bit widths 5 | 3 << 4.
        #expect(Array(record[0..<5]) == [0x56, 0x4b, 2, 5, 3])
        #expect(record[5] & 1 == 1 && record[5] & ~3 == 0)
        #expect(Array(record[6..<13]) == [4, 2, 32, 1, 0xac, 0x02, 0x35])
        let header = try record.withUnsafeBytes { try RecordHeader.decode($0, model: Self.model, image: Self.image) }
        #expect(header.headerLength == 13 && header.firstPosition == 300)
        let covered = record[0..<(record.count - 16)]
        var hashed = Self.model.bytes + Self.image.bytes
        hashed += covered
        #expect(Array(Digest.sha256(hashed).bytes.prefix(16)) == Array(record.suffix(16)))
    }

    @Test func varintsRoundTripAtTheirEdges() throws {
        for position in [0, 127, 128, 16_383, 16_384, Int(UInt32.max)] {
            let kv = SyntheticKV.make(layers: 1, tokens: 1, kvHeads: 1, headDim: 2, firstPosition: position, seed: 7)
            let (header, back, _) = try roundTrip(kv, CodecSettings(codec: .zstd, compactHeader: true))
            #expect(header.firstPosition == position && back.firstPosition == position)
        }
    }

    /// Every truncation, and every single-byte change of the header, is refused with a reason.
    @Test func damagedCompactRecordsAreRefusedNeverTrapped() throws {
        let kv = SyntheticKV.make(layers: 2, tokens: 2, kvHeads: 2, headDim: 4, firstPosition: 200, seed: 8)
        for spec in ["hq", "hq:k=3,v=7", "zstd:compact", "q4:group=4,compact"] {
            let record = try RecordCoder.encode(kv, model: Self.model, image: Self.image, dtype: .f16, settings: CodecSettings(parsing: spec))
            for length in 0..<record.count {
                #expect(throws: RecordProblem.self, "\(spec) cut to \(length)") {
                    _ = try Array(record[0..<length]).withUnsafeBytes { try RecordCoder.decode($0, model: Self.model, image: Self.image) }
                }
            }
            for offset in 0..<record.count {
                for flip: UInt8 in [0x01, 0x80, 0xff] {
                    var damaged = record
                    damaged[offset] ^= flip
                    #expect(throws: (any Error).self, "\(spec) byte \(offset) ^ \(flip)") {
                        _ = try damaged.withUnsafeBytes { try RecordCoder.decode($0, model: Self.model, image: Self.image) }
                    }
                }
            }
            // The keyless decoder (format 1's) says what a format 2 record needs.
            #expect { _ = try record.withUnsafeBytes { try RecordCoder.decode($0) } } throws: { "\($0)".contains("key") }
        }
    }

    @Test func nonMinimalVarintsAndUnknownFieldsAreRefused() throws {
        // A hand-made header: "VK" 2, codec zstd, F16, flags 1, then layers written as 0x81 0x00 (= 1, not shortest).
        let cases: [([UInt8], String)] = [
            ([0x56, 0x4b, 2, 2, 2, 1, 0x81, 0x00, 1, 1, 1, 0], "shortest"),
            ([0x56, 0x4b, 3, 2, 2, 1, 1, 1, 1, 1, 0], "version 3"),
            ([0x56, 0x4b, 2, 9, 2, 1, 1, 1, 1, 1, 0], "codec id 9"),
            ([0x56, 0x4b, 2, 2, 7, 1, 1, 1, 1, 1, 0], "dtype id 7"),
            ([0x56, 0x4b, 2, 2, 2, 5, 1, 1, 1, 1, 0], "flag bits"),
            ([0x56, 0x4b, 2, 2, 2, 1, 0, 1, 1, 1, 0], "zero in shape"),
            ([0x56, 0x4b, 2, 2, 2, 1, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 1, 1, 0], "exceeds"),
            ([0x56, 0x4b, 2, 5, 2, 1, 1, 1, 1, 1, 0, 0x19], "bit widths"),
        ]
        for (header, says) in cases {
            let record = header + [UInt8](repeating: 0, count: 4 * 2 + 16)
            #expect { _ = try record.withUnsafeBytes { try RecordHeader.decode($0, model: Self.model, image: Self.image) } } throws: {
                "\($0)".contains(says)
            }
        }
    }

    @Test func aNonFiniteHalfStepIsRefused() throws {
        let kv = SyntheticKV.make(layers: 1, tokens: 1, kvHeads: 1, headDim: 4, seed: 10)
        let settings = CodecSettings(codec: .hq, zstdLevel: 1)
        var record = try RecordCoder.encode(kv, model: Self.model, image: Self.image, dtype: .f16, settings: settings)
        let header = try record.withUnsafeBytes { try RecordHeader.decode($0, model: Self.model, image: Self.image) }
        try #require(!header.payloadIsZstd)  // 4 values: the raw body is smaller than any zstd frame
        record[header.headerLength] = 0x80
        record[header.headerLength + 1] = 0x7f  // bfloat16 +infinity, with the rotation bit clear
        let checksum = record.withUnsafeBytes { CompactHeader.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<(record.count - 16)]), model: Self.model, image: Self.image) }
        record.replaceSubrange((record.count - 16)..., with: checksum)
        #expect { _ = try record.withUnsafeBytes { try RecordCoder.decode($0, model: Self.model, image: Self.image) } } throws: {
            "\($0)".contains("not finite")
        }
    }

    // MARK: - Helpers

    private func sortedJSON(_ settings: CodecSettings) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(settings)
    }

    private func bodyOf(_ record: [UInt8], _ header: RecordHeader) throws -> [UInt8] {
        let payload = Array(record[header.headerLength..<(header.headerLength + header.payloadLength)])
        guard header.payloadIsZstd else { return payload }
        var body = [UInt8](repeating: 0, count: header.bodyLength)
        try payload.withUnsafeBytes { p in try body.withUnsafeMutableBytes { try Zstd.decompress(p, into: $0) } }
        return body
    }

    private func relativeError(_ decoded: [Float], _ original: [Float]) -> Double {
        let error = zip(decoded, original).reduce(0.0) { $0 + pow(Double($1.0 - $1.1), 2) }
        return (error / original.reduce(0.0) { $0 + Double($1 * $1) }).squareRoot()
    }
}

/// A store whose codec writes format 2 reads, verifies and counts its own records, and refuses
/// one moved under another image's key.
@Suite struct CompactStoreTests {
    @Test(arguments: ["hq", "hq:k=5,v=3", "shuffle-zstd:compact"])
    func aStoreReadsAndVerifiesItsFormatTwoRecords(spec: String) throws {
        let settings = try CodecSettings(parsing: spec)
        let model = SyntheticKV.model(layers: 2, kvHeads: 2, headDim: 16, tokensPerImage: 1, dtype: .f16, seed: 4)
        let store = try makeStore(codec: settings, models: [model])
        var expected: [Digest: KVTensors] = [:]
        for n in 0..<3 {
            let kv = SyntheticKV.make(layers: 2, tokens: 1, kvHeads: 2, headDim: 16, firstPosition: 65, seed: UInt64(n))
            let image = SyntheticKV.imageDigest(n)
            try store.put(kv, image: image, model: model.fingerprint)
            _ = try store.write { try $0.putImage(image, ImageInfo(byteCount: 0, format: "synthetic", width: 0, height: 0, sourceNames: ["\(n)"])) }
            let record = try RecordCoder.encode(kv, model: model.fingerprint, image: image, dtype: .f16, settings: settings)
            expected[image] = try record.withUnsafeBytes { try RecordCoder.decode($0, model: model.fingerprint, image: image).1 }
        }
        for (image, kv) in expected {
            let back = try #require(try store.get(image: image, model: model.fingerprint))
            #expect(back.keys.map(\.bitPattern) == kv.keys.map(\.bitPattern) && back.values.map(\.bitPattern) == kv.values.map(\.bitPattern))
        }
        #expect(try store.verify().failures.isEmpty)
        let stats = try store.stats()
        #expect(stats.records == 3 && stats.rawBytes == 3 * 2 * 2 * 16 * 2 * 2)

        // The bytes of image 0 under image 1's key: intact, but bound to another key.
        let (from, to) = (RecordKey(model: model.fingerprint, image: SyntheticKV.imageDigest(0), codec: settings.codec),
                          RecordKey(model: model.fingerprint, image: SyntheticKV.imageDigest(1), codec: settings.codec))
        let moved = try #require(try storedRecord(store, from))
        try store.write { try $0.transaction.putRecord(to, moved) }
        #expect { _ = try store.get(image: SyntheticKV.imageDigest(1), model: model.fingerprint) } throws: {
            "\($0)".contains("checksum mismatch") && "\($0)".contains(SyntheticKV.imageDigest(1).hex)
        }
        #expect(try store.verify().failures.contains { $0.image == SyntheticKV.imageDigest(1).hex })
    }
}
