// MARK: - int8: KIVI-style (keys per channel, values per token), or a scale per row

/// Two layouts, chosen by the encoder and told apart by the header's int8 flag
/// (`RecordHeader.int8RowScales`, Schemas/record-format.md, codec 3):
/// - Channel scales (flag clear, the original layout): int8 values [layer][K|V][token][channel],
///   then Float32 scales, per layer: the key scales [channel] (absmax over that layer's tokens / 127)
///   and the value scales [token] (absmax over that token's channels / 127).
/// - Row scales (flag set): the same int8 values, then one bfloat16 scale per group of
///   `groupLength(channels)` consecutive values of that stream (a group is a row when there are at
///   least 2 channels): the smallest bfloat16 >= absmax / 127.
/// Decoded value = Float(q) * scale. The encoder keeps channel scales while their body is no
/// larger than the values in F16 (2 bytes each), so a record with many rows keeps KIVI's per-channel
/// keys; otherwise (few rows: at k = 1 every key would need its own Float32 scale) it takes row
/// scales, whose body is at most 2 bytes a value for every shape.
enum Int8Body {
    /// Values per scale in the row-scale layout: a row, but at least 2 (one channel per row).
    static func groupLength(channels: Int) -> Int { max(channels, 2) }

    /// Body length of either layout; nil on overflow. `elements` = layers * 2 * tokens * channels.
    static func length(elements: Int, layers: Int, tokens: Int, channels: Int, rowScales: Bool) -> Int? {
        if rowScales { return elements + 2 * (elements / groupLength(channels: channels)) }
        let (perLayer, o1) = channels.addingReportingOverflow(tokens)
        let (scales, o2) = (4 * layers).multipliedReportingOverflow(by: perLayer)
        guard !o1, !o2 else { return nil }
        return elements + scales
    }

    /// Whether the encoder takes row scales for this shape: when channel scales would make the body
    /// larger than the F16 values.
    static func usesRowScales(layers: Int, tokens: Int, channels: Int) -> Bool {
        let elements = layers * 2 * tokens * channels
        guard let channelScaled = length(elements: elements, layers: layers, tokens: tokens, channels: channels, rowScales: false)
        else { return true }
        return channelScaled > 2 * elements
    }

    static func encode(_ kv: KVTensors) throws -> (body: [UInt8], rowScales: Bool) {
        try requireFinite(kv)
        if usesRowScales(layers: kv.layers, tokens: kv.tokens, channels: kv.channels) {
            return (encodeRowScaled(kv), true)
        }
        return (encodeChannelScaled(kv), false)
    }

    private static func encodeChannelScaled(_ kv: KVTensors) -> [UInt8] {
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
            for channel in 0..<c { scales[s + channel] = channelScale(absmax[channel]) }
            for token in 0..<t {
                for channel in 0..<c { quantised[q + token * c + channel] = quantise(keys[k + token * c + channel], scales[s + channel]) }
            }
            for token in 0..<t {  // values: one scale per token, over the channels
                var largest: Float = 0
                for channel in 0..<c { largest = max(largest, abs(values[k + token * c + channel])) }
                let scale = channelScale(largest)
                scales[s + c + token] = scale
                for channel in 0..<c { quantised[q + block + token * c + channel] = quantise(values[k + token * c + channel], scale) }
            }
        }
        var body = quantised.withUnsafeBytes { Array($0) }
        body += scales.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Array($0) }
        return body
    }

    /// The stream [layer][K|V][token][channel] in groups of `groupLength` values, one bfloat16
    /// scale per group.
    private static func encodeRowScaled(_ kv: KVTensors) -> [UInt8] {
        let block = kv.tokens * kv.channels
        var stream = [Float]()
        stream.reserveCapacity(2 * kv.count)
        for layer in 0..<kv.layers {
            stream += kv.keys[(layer * block)..<((layer + 1) * block)]
            stream += kv.values[(layer * block)..<((layer + 1) * block)]
        }
        let g = groupLength(channels: kv.channels), groups = stream.count / g
        var body = [UInt8](repeating: 0, count: stream.count + 2 * groups)
        for group in 0..<groups {
            var largest: Float = 0
            for i in (group * g)..<((group + 1) * g) { largest = max(largest, abs(stream[i])) }
            let bits = rowScale(largest)
            let scale = Float(bitPattern: UInt32(bits) << 16)
            for i in (group * g)..<((group + 1) * g) { body[i] = UInt8(bitPattern: quantise(stream[i], scale)) }
            body[stream.count + 2 * group] = UInt8(truncatingIfNeeded: bits)
            body[stream.count + 2 * group + 1] = UInt8(truncatingIfNeeded: bits >> 8)
        }
        return body
    }

    /// The Float32 scale of the channel layout: absmax / 127, raised (one Float32 step at a time)
    /// only where that division lost so much in the subnormal range that the largest value would be
    /// clamped by more than half a step; for normal values it is absmax / 127 exactly as before.
    static func channelScale(_ absmax: Float) -> Float {
        var scale = absmax / 127
        while absmax > 0, !(absmax / scale <= 127.5) { scale = scale.nextUp }
        return scale
    }

    /// The bfloat16 bits of a row scale: the smallest bfloat16 >= absmax / 127, then the next
    /// ones up while absmax / scale > 127 (only when the division underflowed: subnormal absmax).
    static func rowScale(_ absmax: Float) -> UInt16 {
        var bits = bfloat16Up(absmax / 127)
        while absmax > 0, !(absmax / Float(bitPattern: UInt32(bits) << 16) <= 127) { bits += 1 }
        return bits
    }

    /// The bits of the smallest bfloat16 >= x, for a finite x >= 0 well inside the range (absmax / 127).
    static func bfloat16Up(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        return UInt16(bits >> 16) + (bits & 0xffff != 0 ? 1 : 0)
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
        if h.int8RowScales {
            let g = groupLength(channels: c)
            for layer in 0..<h.layers {
                for part in 0..<2 {
                    let out = (part == 0 ? keys : values) + layer * block
                    let first = (layer * 2 + part) * block  // this block's place in the stream
                    for i in 0..<block {
                        let group = (first + i) / g
                        let bits = UInt16(littleEndian: body.loadUnaligned(fromByteOffset: scalesOffset + 2 * group, as: UInt16.self))
                        out[i] = Float(q[first + i]) * Float(bitPattern: UInt32(bits) << 16)
                    }
                }
            }
            return
        }
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
