// MARK: - int8, KIVI-style (keys per channel, values per token)

/// Body: int8 values [layer][K|V][token][channel], then Float32 scales, per layer: the key
/// scales [channel] (absmax over that layer's tokens / 127) and the value scales [token]
/// (absmax over that token's channels / 127). Decoded value = Float(q) * scale.
enum Int8Body {
    static func encode(_ kv: KVTensors) throws -> [UInt8] {
        try requireFinite(kv)
        let (t, c) = (kv.tokens, kv.channels)
        let block = t * c
        let (keys, values) = (kv.keys, kv.values)
        var quantised = [Int8](repeating: 0, count: kv.layers * 2 * block)  // [layers][2][tokens][channels]
        var scales = [Float](repeating: 0, count: kv.layers * (c + t))      // [layers][channels + tokens]
        var absmax = [Float](repeating: 0, count: c)                        // [channels] of one layer's keys
        for layer in 0..<kv.layers {
            let k = layer * block, q = layer * 2 * block, s = layer * (c + t)
            for i in 0..<c { absmax[i] = 0 }
            for token in 0..<t {  // keys: one scale per channel, over the tokens
                for channel in 0..<c { absmax[channel] = max(absmax[channel], abs(keys[k + token * c + channel])) }
            }
            for channel in 0..<c { scales[s + channel] = absmax[channel] / 127 }
            for token in 0..<t {
                for channel in 0..<c { quantised[q + token * c + channel] = quantise(keys[k + token * c + channel], scales[s + channel]) }
            }
            for token in 0..<t {  // values: one scale per token, over the channels
                var largest: Float = 0
                for channel in 0..<c { largest = max(largest, abs(values[k + token * c + channel])) }
                let scale = largest / 127
                scales[s + c + token] = scale
                for channel in 0..<c { quantised[q + block + token * c + channel] = quantise(values[k + token * c + channel], scale) }
            }
        }
        var body = quantised.withUnsafeBytes { Array($0) }
        body += scales.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Array($0) }
        return body
    }

    @inline(__always)
    private static func quantise(_ x: Float, _ scale: Float) -> Int8 {
        guard scale > 0 else { return 0 }
        return Int8(max(-127, min(127, (x / scale).rounded(.toNearestOrEven))))
    }

    static func decode(_ body: UnsafeRawBufferPointer, header h: RecordHeader,
                       keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>) {
        let (t, c) = (h.tokens, h.channels)
        let block = t * c
        let q = body.bindMemory(to: Int8.self).baseAddress!
        let scalesOffset = h.layers * 2 * block
        func scale(_ i: Int) -> Float {
            Float(bitPattern: UInt32(littleEndian: body.loadUnaligned(fromByteOffset: scalesOffset + 4 * i, as: UInt32.self)))
        }
        for layer in 0..<h.layers {
            let s = layer * (c + t)
            let keyScales = (0..<c).map { scale(s + $0) }
            let kq = q + layer * 2 * block, vq = kq + block
            let k = keys + layer * block, v = values + layer * block
            for token in 0..<t {
                let valueScale = scale(s + c + token)
                for channel in 0..<c {
                    k[token * c + channel] = Float(kq[token * c + channel]) * keyScales[channel]
                    v[token * c + channel] = Float(vq[token * c + channel]) * valueScale
                }
            }
        }
    }
}

// MARK: - 4-bit groups

/// Body: for every row [layer][K|V][token], the channels' 4-bit codes packed two per byte
/// (channel 2j in the low nibble of byte j, 2j+1 in the high nibble; ceil(channels/2) bytes),
/// then for every row its groups of `groupSize` channels (the last may be shorter) as
/// (min: Float16, scale: Float16). Decoded value = min + Float(q) * scale, in Float32.
/// min is rounded down and scale up to Float16, so every value of a group is within
/// scale / 2 of its decoded value.
enum Q4Body {
    static func encode(_ kv: KVTensors, groupSize g: Int) throws -> [UInt8] {
        try requireFinite(kv)
        let c = kv.channels
        let rows = kv.layers * 2 * kv.tokens
        let rowBytes = (c + 1) / 2, groups = (c + g - 1) / g
        var packed = [UInt8](repeating: 0, count: rows * rowBytes)  // [rows][ceil(channels/2)]
        var params = [UInt8](repeating: 0, count: rows * groups * 4) // [rows][groups][min f16, scale f16]
        var codes = [UInt8](repeating: 0, count: c)                  // [channels] of one row
        for row in 0..<rows {
            let layer = row / (2 * kv.tokens), part = (row / kv.tokens) % 2, token = row % kv.tokens
            let source = part == 0 ? kv.keys : kv.values
            let start = (layer * kv.tokens + token) * c
            for group in 0..<groups {
                let lo = group * g, hi = min(c, lo + g)
                var minimum = Float.infinity, maximum = -Float.infinity
                for i in lo..<hi { minimum = min(minimum, source[start + i]); maximum = max(maximum, source[start + i]) }
                guard let (min16, scale16) = groupParameters(minimum: minimum, maximum: maximum) else {
                    throw RecordProblem("values between \(minimum) and \(maximum) exceed the Float16 range of q4's group parameters; use a lossless codec")
                }
                // (x - min) / scale + 1/2, truncated: round half up; x >= min, so it is never negative.
                let (m, inverse) = (Float(min16), scale16 > 0 ? 1 / Float(scale16) : 0)
                for i in lo..<hi { codes[i] = UInt8(min(15, (source[start + i] - m) * inverse + 0.5)) }
                let p = (row * groups + group) * 4
                params[p] = UInt8(truncatingIfNeeded: min16.bitPattern)
                params[p + 1] = UInt8(truncatingIfNeeded: min16.bitPattern >> 8)
                params[p + 2] = UInt8(truncatingIfNeeded: scale16.bitPattern)
                params[p + 3] = UInt8(truncatingIfNeeded: scale16.bitPattern >> 8)
            }
            for j in 0..<rowBytes {
                let high = 2 * j + 1 < c ? codes[2 * j + 1] : 0
                packed[row * rowBytes + j] = codes[2 * j] | high << 4
            }
        }
        return packed + params
    }

    /// min rounded down, scale rounded up to Float16, such that min + 15 * scale >= maximum;
    /// nil when they do not fit Float16.
    static func groupParameters(minimum: Float, maximum: Float) -> (Float16, Float16)? {
        var min16 = Float16(minimum)
        if Float(min16) > minimum { min16 = min16.nextDown }
        var scale16 = Float16((maximum - Float(min16)) / 15)
        while Float(min16) + 15 * Float(scale16) < maximum, scale16.isFinite { scale16 = scale16.nextUp }
        guard min16.isFinite, scale16.isFinite else { return nil }
        return (min16, scale16)
    }

    static func decode(_ body: UnsafeRawBufferPointer, header h: RecordHeader,
                       keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>) {
        let (c, g) = (h.channels, h.groupSize)
        let rows = h.layers * 2 * h.tokens
        let rowBytes = (c + 1) / 2, groups = (c + g - 1) / g
        let bytes = body.bindMemory(to: UInt8.self).baseAddress!
        let params = bytes + rows * rowBytes
        for row in 0..<rows {
            let layer = row / (2 * h.tokens), part = (row / h.tokens) % 2, token = row % h.tokens
            let out = (part == 0 ? keys : values) + (layer * h.tokens + token) * c
            let codes = bytes + row * rowBytes
            for group in 0..<groups {
                let p = params + (row * groups + group) * 4
                let m = Float(Float16(bitPattern: UInt16(p[0]) | UInt16(p[1]) << 8))
                let s = Float(Float16(bitPattern: UInt16(p[2]) | UInt16(p[3]) << 8))
                for i in (group * g)..<min(c, group * g + g) {
                    let byte = codes[i / 2]
                    let q = i % 2 == 0 ? byte & 15 : byte >> 4
                    out[i] = m + Float(q) * s
                }
            }
        }
    }
}

func requireFinite(_ kv: KVTensors) throws {
    for (name, buffer) in [("keys", kv.keys), ("values", kv.values)] {
        if let i = buffer.firstIndex(where: { !$0.isFinite }) {
            throw RecordProblem("\(name)[\(i)] is \(buffer[i]); the lossy codecs need finite values (use a lossless codec)")
        }
    }
}
