import Foundation
import Testing
@testable import VoCoStore

/// int8's two layouts (Schemas/record-format.md, codec 3): Float32 scales per key channel and
/// value token while that body is no larger than the F16 values, else a bfloat16 scale per row
/// (flag bit 3), so that an int8 record is never larger than the raw F16 record of its shape.
@Suite struct Int8LayoutTests {
    static let model = Digest.sha256(Array("int8 model".utf8)), image = Digest.sha256(Array("int8 image".utf8))

    static func encode(_ kv: KVTensors, compact: Bool, dtype: ValueType = .f16) throws -> (RecordHeader, KVTensors, Int) {
        let settings = CodecSettings(codec: .int8, compactHeader: compact)
        let record = try RecordCoder.encode(kv, model: model, image: image, dtype: dtype, settings: settings)
        let (header, back) = try record.withUnsafeBytes { try RecordCoder.decode($0, model: model, image: image) }
        return (header, back, record.count)
    }

    /// The whole format 2 record (compact header, payload and checksum) is never larger than the
    /// format 2 record holding the same values raw in F16 (the same header, 2 bytes a value, the
    /// same checksum), over every shape of 1...3 layers, 1...4 heads of 1...9, k = 1...9; the
    /// format 1 body is never larger than the F16 values either (format 1 always wraps it in a
    /// zstd frame, whose few bytes of framing this does not bound).
    @Test func int8IsNeverLargerThanRawF16() throws {
        var rowScaled = 0, channelScaled = 0
        for layers in 1...3 {
            for kvHeads in 1...4 {
                for headDim in 1...9 {
                    for tokens in 1...9 {
                        let kv = SyntheticKV.make(layers: layers, tokens: tokens, kvHeads: kvHeads, headDim: headDim,
                                                  seed: UInt64(layers * 1000 + kvHeads * 100 + headDim * 10 + tokens))
                        let shape = "\(layers) layers, \(kvHeads) x \(headDim), k = \(tokens)"
                        let rawF16Body = 2 * 2 * kv.count
                        let (header, _, size) = try Self.encode(kv, compact: true)
                        #expect(header.format == 2 && header.codec == .int8)
                        #expect(size <= header.headerLength + rawF16Body + CompactHeader.checksumLength, "\(shape): \(size) bytes")
                        #expect(header.bodyLength <= rawF16Body, "\(shape)")
                        let (one, _, _) = try Self.encode(kv, compact: false)
                        #expect(one.format == 1 && one.bodyLength <= rawF16Body && one.int8RowScales == header.int8RowScales, "\(shape)")
                        // The encoder keeps per-channel key scales exactly when they fit.
                        let channelBody = 2 * kv.count + 4 * layers * (kvHeads * headDim + tokens)
                        #expect(header.int8RowScales == (channelBody > rawF16Body), "\(shape)")
                        if header.int8RowScales { rowScaled += 1 } else { channelScaled += 1 }
                    }
                }
            }
        }
        #expect(rowScaled > 0 && channelScaled > 0)
    }

    /// A k = 1 record of the bundled model's shape (4 layers, 2 heads of 32): 512 codes and 8
    /// bfloat16 scales (one per row), where the per-channel layout needed 512 + 4 * 4 * 65.
    @Test func aBundledShapeRecordAtKOne() throws {
        let kv = SyntheticKV.make(layers: 4, tokens: 1, kvHeads: 2, headDim: 32, firstPosition: 65, seed: 5)
        let (header, _, size) = try Self.encode(kv, compact: true)
        #expect(header.int8RowScales && header.bodyLength == 512 + 2 * 8)
        #expect(header.headerLength == 11 && size <= 11 + 528 + 16)  // raw F16: 11 + 1,024 + 16
    }

    /// Odd shapes, one channel (groups of 2 values that run from one row into the next, K into V
    /// at odd k), k = 1...8, zeros, subnormals and values near the Float32 limit: every decoded
    /// value is within half its scale of the original, in both formats and every dtype.
    @Test(arguments: ValueType.allCases)
    func roundTripsStayWithinHalfAScale(dtype: ValueType) throws {
        let shapes = [(1, 1, 1), (2, 1, 1), (1, 1, 3), (3, 2, 7), (2, 3, 5), (2, 2, 8)]
        for (layers, kvHeads, headDim) in shapes {
            for tokens in 1...8 {
                var kv = SyntheticKV.make(layers: layers, tokens: tokens, kvHeads: kvHeads, headDim: headDim, seed: UInt64(tokens))
                kv.keys[0] = 0
                kv.values[kv.values.count - 1] = 0x1p-140  // subnormal
                if kv.count > 1 { kv.keys[1] = -3e38; kv.values[0] = 0x1p-149 }
                if tokens == 2 { kv.keys = kv.keys.map { $0 * 0x1p-133 } }  // every key subnormal
                if tokens == 4 { kv.values = kv.values.map { _ in 0 } }  // all zeros
                for compact in [false, true] {
                    let (header, back, _) = try Self.encode(kv, compact: compact, dtype: dtype)
                    let what = "\(layers)x\(kvHeads)x\(headDim) k = \(tokens) compact \(compact) \(dtype.name) rows \(header.int8RowScales)"
                    #expect(back.keys.allSatisfy(\.isFinite) && back.values.allSatisfy(\.isFinite), "\(what)")
                    let scales = Self.scales(kv, rowScales: header.int8RowScales)
                    for (part, original, decoded, scale) in [("keys", kv.keys, back.keys, scales.keys), ("values", kv.values, back.values, scales.values)] {
                        for i in original.indices {
                            let bound = scale[i] > 0 ? scale[i] * 0.5001 : abs(original[i])
                            #expect(abs(decoded[i] - original[i]) <= bound, "\(what) \(part)[\(i)]: \(original[i]) -> \(decoded[i])")
                            if original[i] == 0 { #expect(decoded[i] == 0, "\(what) \(part)[\(i)]") }
                        }
                    }
                }
            }
        }
    }

    /// The scale each value was quantised with, recomputed from the spec.
    static func scales(_ kv: KVTensors, rowScales: Bool) -> (keys: [Float], values: [Float]) {
        let (l, t, c) = (kv.layers, kv.tokens, kv.channels)
        var keys = [Float](repeating: 0, count: kv.count), values = keys
        if rowScales {
            var stream: [Float] = []
            for layer in 0..<l {
                let block: Range<Int> = (layer * t * c)..<((layer + 1) * t * c)
                stream += kv.keys[block]
                stream += kv.values[block]
            }
            let g = max(c, 2)
            for layer in 0..<l {
                for part in 0..<2 {
                    for i in 0..<(t * c) {
                        let first = ((layer * 2 + part) * t * c + i) / g * g
                        let absmax = stream[first..<(first + g)].map { abs($0) }.max()!
                        let scale = Float(bitPattern: UInt32(Int8Body.rowScale(absmax)) << 16)
                        if part == 0 { keys[layer * t * c + i] = scale } else { values[layer * t * c + i] = scale }
                    }
                }
            }
            return (keys, values)
        }
        for layer in 0..<l {
            for token in 0..<t {
                for channel in 0..<c {
                    let i = layer * t * c + token * c + channel
                    keys[i] = Int8Body.channelScale((0..<t).map { abs(kv.keys[layer * t * c + $0 * c + channel]) }.max()!)
                    values[i] = Int8Body.channelScale((0..<c).map { abs(kv.values[layer * t * c + token * c + $0]) }.max()!)
                }
            }
        }
        return (keys, values)
    }

    @Test func bfloat16ScalesRoundUp() {
        #expect(Int8Body.bfloat16Up(1) == 0x3f80)
        #expect(Int8Body.bfloat16Up(Float(bitPattern: 0x3f80_0001)) == 0x3f81)
        #expect(Int8Body.bfloat16Up(0) == 0)
        #expect(Int8Body.bfloat16Up(Float(bitPattern: 1)) == 1)  // the smallest subnormal rounds up to bfloat16's
        // A subnormal absmax whose division by 127 underflowed gets a scale that holds it.
        for absmax in [Float(0x1p-140), 0x1p-145, 0x1p-149, 0x1p-133] {
            #expect(absmax / Float(bitPattern: UInt32(Int8Body.rowScale(absmax)) << 16) <= 127)
            #expect(absmax / Int8Body.channelScale(absmax) <= 127.5)
        }
        #expect(Int8Body.rowScale(0) == 0 && Int8Body.channelScale(0) == 0)
        #expect(Int8Body.channelScale(1) == Float(1) / 127)
    }

    /// Only int8 may set flag bit 3, in either format; a record with it is refused otherwise.
    @Test func onlyInt8MaySetTheRowScaleFlag() throws {
        let kv = SyntheticKV.make(layers: 1, tokens: 1, kvHeads: 1, headDim: 4, seed: 1)
        for compact in [false, true] {
            var record = try RecordCoder.encode(kv, model: Self.model, image: Self.image, dtype: .f16,
                                                settings: CodecSettings(codec: .zstd, compactHeader: compact))
            let flagOffset = compact ? 5 : 14
            record[flagOffset] |= 8
            if compact {
                // re-seal so that only the flag is wrong
                let covered = Array(record[0..<(record.count - 16)])
                record = covered + covered.withUnsafeBytes { CompactHeader.checksum($0, model: Self.model, image: Self.image) }
            } else {
                let covered = Array(record[0..<(record.count - 32)])
                record = covered + Digest.sha256(covered).bytes
            }
            #expect {
                _ = try record.withUnsafeBytes { try RecordCoder.decode($0, model: Self.model, image: Self.image) }
            } throws: { "\($0)".contains("bit 3") }
        }
    }

    /// A record written before row scales existed (per-channel layout, flag clear) reads as before:
    /// the channel layout is what the encoder still writes when it fits, and FormatOneIsPinnedTests
    /// pins its bytes and floats.
    @Test func theChannelLayoutIsStillWrittenWhenItFits() throws {
        let kv = SyntheticKV.make(layers: 3, tokens: 3, kvHeads: 2, headDim: 7, firstPosition: 65, seed: 11, modelSeed: 2)
        let (header, _, _) = try Self.encode(kv, compact: false)
        #expect(!header.int8RowScales && header.bodyLength == 252 + 4 * 3 * (14 + 3))
    }
}
