import SafeTensors

// MARK: - hq: per-head Hadamard rotation (when it helps), then B-bit symmetric codes

/// Body of codec 5 `hq` (Schemas/record-format.md, "codec 5"): one 16-bit parameter per
/// (row, head) group, then the key codes and the value codes as two bit streams.
///
/// A group is one head of one row: D values. Its parameter holds a bfloat16 half-step `s`
/// (bits 0...14: a positive bfloat16 without its sign bit) and in bit 15 whether the group was
/// rotated. Decoded: `w[i] = Float(2 * code[i] + 1 - 2^B) * s`; a rotated group then goes through
/// the unnormalised Walsh-Hadamard transform in blocks of `rotationBlock(D)` channels.
/// The encoder rotates by `H / b` (so that the decoder's `H` inverts it exactly in real
/// arithmetic) and keeps, per group, whichever of plain or rotated and of a few clipping ratios
/// gives the smallest squared error.
enum HadamardBody {
    static let bitRange = 2...8
    /// Clipping ratios tried for the largest magnitude of a group, best squared error wins.
    static let clipRatios: [Float] = [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5]
    static let rotatedFlag: UInt16 = 0x8000

    /// The largest power of two that divides `headDim`: the Walsh-Hadamard block.
    static func rotationBlock(_ headDim: Int) -> Int { headDim & -headDim }

    /// Bytes of `count` codes of `bits` bits, packed LSB first.
    static func streamLength(_ count: Int, bits: Int) -> Int { (count * bits + 7) / 8 }

    // MARK: Encoding

    static func encode(_ kv: KVTensors, keyBits: Int, valueBits: Int) throws -> [UInt8] {
        try requireFinite(kv)
        let (d, heads, c) = (kv.headDim, kv.kvHeads, kv.channels)
        let rows = kv.layers * kv.tokens  // rows of K (and of V)
        var params = [UInt8](repeating: 0, count: 2 * kv.layers * 2 * kv.tokens * heads)  // [layers][K|V][tokens][heads] u16
        var streams: [[UInt8]] = []
        let group = Group(headDim: d)
        for (part, bits) in [(0, keyBits), (1, valueBits)] {
            var writer = BitWriter(capacity: streamLength(rows * c, bits: bits))
            let source = part == 0 ? kv.keys : kv.values
            source.withUnsafeBufferPointer { src in
                for layer in 0..<kv.layers {
                    for token in 0..<kv.tokens {
                        let row = layer * kv.tokens + token
                        for head in 0..<heads {
                            let parameter = group.quantise(src.baseAddress! + row * c + head * d, bits: bits)
                            let p = 2 * (((layer * 2 + part) * kv.tokens + token) * heads + head)
                            params[p] = UInt8(truncatingIfNeeded: parameter)
                            params[p + 1] = UInt8(truncatingIfNeeded: parameter >> 8)
                            for i in 0..<d { writer.append(group.codes[i], bits: bits) }
                        }
                    }
                }
            }
            streams.append(writer.finished)
        }
        return params + streams[0] + streams[1]
    }

    /// Scratch for one group: the rotated values, a trial's codes and the chosen codes.
    final class Group {
        let headDim: Int, block: Int
        private let rotated: UnsafeMutablePointer<Float>   // [headDim] the group in the rotated domain
        private var trial: UnsafeMutablePointer<UInt16>    // [headDim]
        private(set) var codes: UnsafeMutablePointer<UInt16> // [headDim] the chosen codes

        init(headDim: Int) {
            self.headDim = headDim
            block = HadamardBody.rotationBlock(headDim)
            rotated = .allocate(capacity: headDim)
            trial = .allocate(capacity: headDim)
            codes = .allocate(capacity: headDim)
        }

        deinit {
            rotated.deallocate()
            trial.deallocate()
            codes.deallocate()
        }

        /// Chooses plain or rotated and the half-step for the D values at `x`; leaves the codes
        /// in `codes` and returns the group's parameter.
        func quantise(_ x: UnsafePointer<Float>, bits: Int) -> UInt16 {
            var best = (error: Float.infinity, parameter: UInt16(0))
            var largest: Float = 0
            for i in 0..<headDim { largest = max(largest, abs(x[i])) }
            // Rotation sums `block` values: skip it where that could leave the Float32 range.
            let canRotate = block > 1 && largest < 0x1p100
            if canRotate {
                let inverse = 1 / Float(block)
                for i in 0..<headDim { rotated[i] = x[i] * inverse }
                for start in stride(from: 0, to: headDim, by: block) { HadamardBody.transform(rotated + start, block) }
            }
            // Errors are compared in units of the group's largest magnitude, so that squares of
            // values near the Float32 limit cannot overflow.
            let unit: Float = largest > 0 ? 1 / largest : 0
            let top = Float((1 << bits) - 1)
            for rotate in canRotate ? [false, true] : [false] {
                let w = rotate ? UnsafePointer(rotated) : x
                // Squared error in x: the rotated domain is H / b, so an error there counts b times.
                let weight: Float = rotate ? Float(block) : 1
                var amax: Float = 0
                for i in 0..<headDim { amax = max(amax, abs(w[i])) }
                for ratio in HadamardBody.clipRatios {
                    var halfStep = floatToBFloat16Bits(amax * ratio / top) & 0x7fff
                    // The largest code must decode to a finite value.
                    if !(top * bfloat16BitsToFloat(halfStep)).isFinite { halfStep -= 1 }
                    let error = weight * trial(w, halfStep: halfStep, bits: bits, unit: unit)
                    if error < best.error {
                        best = (error, halfStep | (rotate ? HadamardBody.rotatedFlag : 0))
                        swap(&codes, &trial)
                    }
                    if amax == 0 { break }
                }
            }
            return best.parameter
        }

        /// Codes of `w` for `halfStep` into `trial`; the squared error in that domain, in `1 / unit`s.
        private func trial(_ w: UnsafePointer<Float>, halfStep: UInt16, bits: Int, unit: Float) -> Float {
            let s = bfloat16BitsToFloat(halfStep)
            let top = Float((1 << bits) - 1)
            var error: Float = 0
            guard s > 0 else {
                // The middle code decodes to +0: (2 * 2^(B-1) - (2^B - 1)) * 0.
                for i in 0..<headDim { trial[i] = UInt16(1 << (bits - 1)); error += (w[i] * unit) * (w[i] * unit) }
                return error
            }
            for i in 0..<headDim {
                let code = min(top, max(0, ((w[i] / s + top) * 0.5).rounded()))
                trial[i] = UInt16(code)
                let e = (w[i] - (2 * code - top) * s) * unit
                error += e * e
            }
            return error
        }
    }

    // MARK: Decoding

    /// Refuses a body whose half-steps are not finite (a writer never makes one).
    static func checkParameters(_ body: UnsafeRawBufferPointer, header h: RecordHeader) throws {
        for g in 0..<(h.layers * 2 * h.tokens * h.kvHeads) {
            let bits = (UInt16(body[2 * g]) | UInt16(body[2 * g + 1]) << 8) & 0x7fff
            guard bfloat16BitsToFloat(bits).isFinite else {
                throw RecordProblem("hq group \(g) has a half-step that is not finite (bfloat16 bits \(bits))")
            }
        }
    }

    /// Decodes a body whose parameters `checkParameters` accepted into K and V, each [layers][tokens][channels].
    static func decode(_ body: UnsafeRawBufferPointer, header h: RecordHeader,
                       keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>) {
        let (d, heads, c) = (h.headDim, h.kvHeads, h.channels)
        let block = rotationBlock(d)
        let groups = h.layers * 2 * h.tokens * heads
        let bytes = body.bindMemory(to: UInt8.self)
        var offset = 2 * groups
        for (part, bits) in [(0, h.keyBits), (1, h.valueBits)] {
            let length = streamLength(h.layers * h.tokens * c, bits: bits)
            var reader = BitReader(UnsafeBufferPointer(rebasing: bytes[offset..<(offset + length)]))
            offset += length
            let out = part == 0 ? keys : values
            let top = (1 << bits) - 1
            for layer in 0..<h.layers {
                for token in 0..<h.tokens {
                    for head in 0..<heads {
                        let g = ((layer * 2 + part) * h.tokens + token) * heads + head
                        let parameter = UInt16(bytes[2 * g]) | UInt16(bytes[2 * g + 1]) << 8
                        let s = bfloat16BitsToFloat(parameter & 0x7fff)
                        let w = out + (layer * h.tokens + token) * c + head * d
                        for i in 0..<d { w[i] = Float(2 * reader.next(bits: bits) - top) * s }
                        if parameter & rotatedFlag != 0 {
                            for start in stride(from: 0, to: d, by: block) { transform(w + start, block) }
                        }
                    }
                }
            }
        }
    }

    /// The unnormalised Walsh-Hadamard transform of `n` (a power of two) values in place:
    /// for h = 1, 2, 4, ... < n, every pair (j, j + h) with j mod 2h < h becomes (a + b, a - b).
    /// The exact order of the Float32 operations is part of the format.
    @inline(__always)
    static func transform(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        var h = 1
        while h < n {
            var i = 0
            while i < n {
                for j in i..<(i + h) {
                    let a = x[j], b = x[j + h]
                    x[j] = a + b
                    x[j + h] = a - b
                }
                i += 2 * h
            }
            h *= 2
        }
    }
}

// MARK: - Bit streams (LSB first)

/// Codes of `bits` bits appended LSB first: bit k of the stream is bit k % 8 of byte k / 8.
struct BitWriter {
    private var bytes: [UInt8] = []
    private var accumulator: UInt64 = 0
    private var pending = 0
    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    mutating func append(_ code: UInt16, bits: Int) {
        accumulator |= UInt64(code) << UInt64(pending)
        pending += bits
        while pending >= 8 {
            bytes.append(UInt8(truncatingIfNeeded: accumulator))
            accumulator >>= 8
            pending -= 8
        }
    }

    /// The stream, its last byte zero-padded.
    var finished: [UInt8] {
        pending > 0 ? bytes + [UInt8(truncatingIfNeeded: accumulator)] : bytes
    }
}

struct BitReader {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0
    private var accumulator: UInt64 = 0
    private var available = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    @inline(__always)
    mutating func next(bits: Int) -> Int {
        while available < bits {
            // The header checked the stream length, so reads stay inside it.
            accumulator |= UInt64(bytes[position]) << UInt64(available)
            position += 1
            available += 8
        }
        let code = Int(accumulator & ((1 << UInt64(bits)) - 1))
        accumulator >>= UInt64(bits)
        available -= bits
        return code
    }
}
