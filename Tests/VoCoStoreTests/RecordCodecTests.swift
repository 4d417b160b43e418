import Foundation
import Testing
@testable import VoCoStore

@Suite struct RecordCodecTests {
    static let lossless: [RecordCodec] = [.shuffleZstd, .zstd]

    // MARK: - Round trips

    @Test(arguments: lossless, ValueType.allCases)
    func losslessCodecsGiveBackTheDTypeRoundedValuesExactly(codec: RecordCodec, dtype: ValueType) throws {
        let model = tinyModel(dtype: dtype)
        var kv = tinyCache(1, model: model, tokens: 3)
        kv.keys[0] = 65504; kv.keys[1] = -1e-7; kv.values[2] = 0  // f16 max, a subnormal-ish value, zero
        let store = try makeStore(codec: CodecSettings(codec: codec), models: [model])
        let image = SyntheticKV.imageDigest(1)
        try store.put(kv, image: image, model: model.fingerprint)
        let back = try #require(try store.get(image: image, model: model.fingerprint))
        #expect(back.keys.map(\.bitPattern) == rounded(kv.keys, to: dtype).map(\.bitPattern))
        #expect(back.values.map(\.bitPattern) == rounded(kv.values, to: dtype).map(\.bitPattern))
        #expect(back.shape == kv.shape)
        #expect(back.firstPosition == 5)
        #expect(back.keysBeforeRoPE)
    }

    @Test func losslessKeepsInfinitiesAndNaNBitPatterns() throws {
        let model = tinyModel(dtype: .f32)
        var kv = tinyCache(2, model: model)
        kv.keys[3] = .infinity; kv.values[4] = -.infinity; kv.values[5] = Float(bitPattern: 0x7fc0_1234)
        let record = try RecordCoder.encode(kv, model: model.fingerprint, image: SyntheticKV.imageDigest(2), dtype: .f32, settings: .default)
        let (_, back) = try record.withUnsafeBytes { try RecordCoder.decode($0) }
        #expect(back.keys.map(\.bitPattern) == kv.keys.map(\.bitPattern))
        #expect(back.values.map(\.bitPattern) == kv.values.map(\.bitPattern))
    }

    @Test(arguments: ValueType.allCases)
    func int8StaysWithinHalfAScalePerChannelAndToken(dtype: ValueType) throws {
        let model = tinyModel(dtype: dtype)
        let kv = tinyCache(3, model: model, tokens: 5)
        let back = try roundTrip(kv, model: model, settings: CodecSettings(codec: .int8))
        let (t, c) = (kv.tokens, kv.channels)
        for layer in 0..<kv.layers {
            for channel in 0..<c {  // keys: one scale per channel
                let indices = (0..<t).map { layer * t * c + $0 * c + channel }
                let scale = indices.map { abs(kv.keys[$0]) }.max()! / 127
                for i in indices { #expect(abs(back.keys[i] - kv.keys[i]) <= scale * 0.5001) }
            }
            for token in 0..<t {  // values: one scale per token
                let indices = (0..<c).map { layer * t * c + token * c + $0 }
                let scale = indices.map { abs(kv.values[$0]) }.max()! / 127
                for i in indices { #expect(abs(back.values[i] - kv.values[i]) <= scale * 0.5001) }
            }
        }
    }

    @Test(arguments: [32, 6, 16])
    func q4StaysWithinHalfAStepPerGroup(groupSize: Int) throws {
        // 2 heads of 7: an odd channel count, so the last nibble and a short last group are exercised.
        let model = SyntheticKV.model(layers: 2, kvHeads: 2, headDim: 7, tokensPerImage: 3, dtype: .f16)
        let kv = SyntheticKV.make(layers: 2, tokens: 3, kvHeads: 2, headDim: 7, seed: 4)
        let back = try roundTrip(kv, model: model, settings: CodecSettings(codec: .q4, groupSize: groupSize))
        let c = kv.channels
        for (original, decoded) in [(kv.keys, back.keys), (kv.values, back.values)] {
            for row in 0..<(kv.layers * kv.tokens) {
                for start in stride(from: 0, to: c, by: groupSize) {
                    let group = (row * c + start)..<(row * c + min(c, start + groupSize))
                    let lo = original[group].min()!, hi = original[group].max()!
                    // min is rounded down to Float16 (at most one Float16 step) and the scale up.
                    let step = ((hi - lo) + Float(Float16(abs(lo)).ulp)) / 15 * (1 + 0x1p-9)
                    for i in group { #expect(abs(decoded[i] - original[i]) <= step / 2 + 1e-6, "row \(row) channel \(i - row * c)") }
                }
            }
        }
    }

    @Test func lossyCodecsRefuseNonFiniteValues() throws {
        let model = tinyModel()
        var kv = tinyCache(5, model: model)
        kv.values[3] = .nan
        for codec in [RecordCodec.int8, .q4] {
            #expect(throws: StoreError.self) {
                _ = try RecordCoder.encode(kv, model: model.fingerprint, image: SyntheticKV.imageDigest(5), dtype: .f16, settings: CodecSettings(codec: codec))
            }
        }
        var huge = tinyCache(5, model: model)
        huge.keys[0] = -1e6
        #expect(throws: StoreError.self) {
            _ = try RecordCoder.encode(huge, model: model.fingerprint, image: SyntheticKV.imageDigest(5), dtype: .f16, settings: CodecSettings(codec: .q4))
        }
    }

    @Test func wrongBufferLengthsAreRefusedNamingTheImage() throws {
        let model = tinyModel()
        var kv = tinyCache(6, model: model)
        kv.values.removeLast()
        let image = SyntheticKV.imageDigest(6)
        #expect {
            _ = try RecordCoder.encode(kv, model: model.fingerprint, image: image, dtype: .f16, settings: .default)
        } throws: { error in
            "\(error)".contains(image.hex) && "\(error)".contains("values hold")
        }
    }

    // MARK: - Layout

    @Test func headerFieldsSitWhereTheSchemaSays() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Schemas/record-header.schema.json")
        let schema = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let properties = try #require(schema["properties"] as? [String: [String: Any]])
        let model = tinyModel(), image = SyntheticKV.imageDigest(7)
        let kv = SyntheticKV.make(layers: 2, tokens: 3, kvHeads: 2, headDim: 8, firstPosition: 577, seed: 7)
        let record = try RecordCoder.encode(kv, model: model.fingerprint, image: image, dtype: .bf16, settings: CodecSettings(codec: .q4, groupSize: 4))
        let header = try record.withUnsafeBytes { try RecordCoder.verifiedHeader($0) }
        let json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(header)) as? [String: Any])
        // Format 1 has exactly the fields with an offset; format 2 adds the others (all of them
        // for an hq record relative to its model's reference).
        #expect(Set(json.keys) == Set(properties.filter { $0.value["x-offset"] != nil }.keys))
        let reference = try ModelReference.make(kv, model: model.fingerprint, dtype: .bf16).reference
        let compact = try RecordCoder.encode(kv, model: model.fingerprint, image: image, dtype: .bf16,
                                             settings: CodecSettings(codec: .hq, referenceImages: 16), reference: reference)
        let compactHeader = try compact.withUnsafeBytes { try RecordCoder.verifiedHeader($0, model: model.fingerprint, image: image, reference: reference) }
        let compactJSON = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(compactHeader)) as? [String: Any])
        #expect(Set(compactJSON.keys) == Set(properties.keys).subtracting(["int8Scales"]))
        // An int8 record, in either format, says which scales it has.
        for compactInt8 in [false, true] {
            let int8 = try RecordCoder.encode(kv, model: model.fingerprint, image: image, dtype: .bf16, settings: CodecSettings(codec: .int8, compactHeader: compactInt8))
            let int8Header = try int8.withUnsafeBytes { try RecordCoder.verifiedHeader($0, model: model.fingerprint, image: image) }
            let int8JSON = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(int8Header)) as? [String: Any])
            #expect(int8JSON["int8Scales"] as? String == (int8Header.int8RowScales ? "rows" : "channels"))
            #expect(Set(int8JSON.keys).isSubset(of: Set(properties.keys)))
        }
        #expect(compactJSON["magic"] as? String == "VK" && compactJSON["checksum"] as? String == "sha256-keyed-16")
        for (name, property) in properties where property["x-offset"] != nil {
            let offset = try #require(property["x-offset"] as? Int), size = try #require(property["x-size"] as? Int)
            let bytes = Array(record[offset..<(offset + size)])
            let integer = bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            switch json[name] {
            case let n as Int where property["x-type"] as? String != "bytes" && (property["x-ids"] == nil):
                #expect(integer == UInt64(n), "\(name)")
            case let b as Bool:
                #expect((integer & 1 == 1) == b, "\(name)")
            case let s as String:
                if let ids = property["x-ids"] as? [String: Int] { #expect(ids[s] == Int(integer), "\(name)") }
                else if property["pattern"] != nil { #expect(Digest(bytes: bytes)?.hex == s, "\(name)") }
                else { #expect(String(decoding: bytes, as: UTF8.self) == s, "\(name)") }
            default:
                Issue.record("unexpected JSON for \(name): \(String(describing: json[name]))")
            }
        }
        #expect(header.firstPosition == 577 && header.groupSize == 4 && header.dtype == .bf16)
        #expect(record.count == RecordHeader.length + header.payloadLength + RecordHeader.checksumLength)
    }

    @Test func shuffledBodyIsBytePlanes() throws {
        let kv = KVTensors(layers: 1, tokens: 1, kvHeads: 1, headDim: 2, firstPosition: 0,
                           keys: [1, 2], values: [-2, 0.5])
        let body = LosslessBody.encode(kv, dtype: .f16, shuffled: true)
        // f16 bits: 1 = 0x3c00, 2 = 0x4000, -2 = 0xc000, 0.5 = 0x3800; low bytes first, then high bytes.
        #expect(body == [0x00, 0x00, 0x00, 0x00, 0x3c, 0x40, 0xc0, 0x38])
    }

    private func roundTrip(_ kv: KVTensors, model: ModelDescriptor, settings: CodecSettings) throws -> KVTensors {
        let store = try makeStore(codec: settings, models: [model])
        let image = SyntheticKV.imageDigest(99)
        try store.put(kv, image: image, model: model.fingerprint)
        return try #require(try store.get(image: image, model: model.fingerprint))
    }
}

/// Format 1 records of the older codecs, pinned: the header and body bytes the writer makes
/// (the body before zstd, whose output may differ between zstd versions) and the floats the
/// reader gives back, for fixed caches. The pins were taken when format 2 was added, from a
/// writer whose whole records were checked byte for byte against the build before it, so any
/// change to how format 1 is written or read shows here.
@Suite struct FormatOneIsPinnedTests {
    static let pins: [String: (record: String, floats: String)] = [
        "int8 BF16": ("fcbf5ad2d3b8fbac2a8f5ef620bd6feb3c9b34fd73b6e2f49fcfed0b8af64c29", "4fc94709c4e22331620436cf2dd1e42ac42e74ae1f85fc3619d9ee7d7b705c2a"),
        "int8 F16": ("fc79e1d596231806e2c77671a8a2086d6519c6d2317380863d1f3aaa4a479ba4", "4fc94709c4e22331620436cf2dd1e42ac42e74ae1f85fc3619d9ee7d7b705c2a"),
        "int8 F32": ("9066b06377c6d1068ee24958ff6f81ac015569feab7bf923960966b9d960a7b1", "4fc94709c4e22331620436cf2dd1e42ac42e74ae1f85fc3619d9ee7d7b705c2a"),
        "q4 BF16": ("77a3b49dd4238036168765c1b800f32f1b6cd3f17ec6de56f1034d5ca06f0ce9", "818f913ecb439b3e4a6c250989a24a7b8e557d48730ba28253c590985d8ee15c"),
        "q4 F16": ("6f936577ab40a22e43434d8439b488d8ac2506bdfb556708ce0d8686674cd765", "818f913ecb439b3e4a6c250989a24a7b8e557d48730ba28253c590985d8ee15c"),
        "q4 F32": ("7abcf07ed4deba0eb14a39d3cc77c44c9ac047598776c2fe17e86c94a28237f1", "818f913ecb439b3e4a6c250989a24a7b8e557d48730ba28253c590985d8ee15c"),
        "q4:group=6 BF16": ("c102f5136955990a302d19d6a5c37d5d1041749b87fccb5b26cd8457958bd6c1", "331fad073e73b559a2408c4a0523db4620e38bbcd825b7605080d28aa42473fe"),
        "q4:group=6 F16": ("983d36db276077f7999927aba27758c3cd40dfcb9eff336f8e34f4479dd75bf9", "331fad073e73b559a2408c4a0523db4620e38bbcd825b7605080d28aa42473fe"),
        "q4:group=6 F32": ("60910ab246f0cc793448e803c9e59df874e3837e4ab3036b7ff3bbb49407a633", "331fad073e73b559a2408c4a0523db4620e38bbcd825b7605080d28aa42473fe"),
        "shuffle-zstd BF16": ("a9578fa4f4f902c744b4737c54a3a79e73e964a32161bcfec18d1d1cee2f720b", "13aceb49c2ef17edcca97bedf93ea5ef8eb6714dfdc6d1bf0f73c752ddc2594c"),
        "shuffle-zstd F16": ("af19dd3631aba070ae27ed3371922eff1c64ed0b926d598971d10f923de0a73c", "efd9124ce085b38d9842c6a86bc9c74cc7a19ba949b1ea7b57b7c62aaed41bd0"),
        "shuffle-zstd F32": ("7b5b66324beaa1fedc41693679f22e4b64c4b3fc67337812aec924bb6f485621", "60649a392dffadc17bc74e20cea628986e752c724e804d57a8a064e81d372d6a"),
        "zstd BF16": ("f238c1a3122eb4698832ac3e2b22af39f18bfefe36d47cb8f5345c231bddc7a2", "13aceb49c2ef17edcca97bedf93ea5ef8eb6714dfdc6d1bf0f73c752ddc2594c"),
        "zstd F16": ("09845fb1b0a38163178273dfe4f36faef40a7430fc72297ed1d7750f1fc04aeb", "efd9124ce085b38d9842c6a86bc9c74cc7a19ba949b1ea7b57b7c62aaed41bd0"),
        "zstd F32": ("8c3e653bcb4b3a9e1dcfecba257e61f6d58e263b1b99142d4ba7cd5c174b62a4", "60649a392dffadc17bc74e20cea628986e752c724e804d57a8a064e81d372d6a"),
    ]

    @Test func theOlderCodecsWriteAndReadFormatOneExactlyAsBefore() throws {
        let model = Digest.sha256(Array("pinned model".utf8)), image = Digest.sha256(Array("pinned image".utf8))
        var seen: [String: (record: String, floats: String)] = [:]
        for spec in ["shuffle-zstd", "zstd", "int8", "q4", "q4:group=6"] {
            for dtype in ValueType.allCases {
                let kv = SyntheticKV.make(layers: 3, tokens: 3, kvHeads: 2, headDim: 7, firstPosition: 65, seed: 11, modelSeed: 2)
                let record = try RecordCoder.encode(kv, model: model, image: image, dtype: dtype, settings: CodecSettings(parsing: spec))
                let (header, back) = try record.withUnsafeBytes { try RecordCoder.decode($0, model: model, image: image) }
                #expect(header.format == 1)
                let floats = (back.keys + back.values).flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
                var body = [UInt8](repeating: 0, count: header.bodyLength)
                try Array(record[128..<(record.count - 32)]).withUnsafeBytes { p in try body.withUnsafeMutableBytes { try Zstd.decompress(p, into: $0) } }
                seen["\(spec) \(dtype.name)"] = (Digest.sha256(Array(record[0..<128]) + body).hex, Digest.sha256(floats).hex)
            }
        }
        for (name, pin) in Self.pins {
            #expect(seen[name]?.record == pin.record, "\(name): record bytes")
            #expect(seen[name]?.floats == pin.floats, "\(name): decoded floats")
        }
        #expect(Self.pins.count == seen.count)
    }
}
