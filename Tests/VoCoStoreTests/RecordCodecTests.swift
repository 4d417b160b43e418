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
        #expect(Set(json.keys) == Set(properties.keys))
        for (name, property) in properties {
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
