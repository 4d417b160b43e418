import SafeTensors

// MARK: - Body lengths per codec (Schemas/record-format.md, "Body")

enum BodyLayout {
    /// The decompressed body length a header implies, or nil when it overflows.
    static func length(of h: RecordHeader) -> Int? {
        // Header fields are up to 32 bits each: every product is checked before it is used.
        let (channels, o1) = h.kvHeads.multipliedReportingOverflow(by: h.headDim)
        let (rows, o2) = h.layers.multipliedReportingOverflow(by: 2 * h.tokens)  // K and V rows
        let (elements, o3) = rows.multipliedReportingOverflow(by: channels)
        guard !o1, !o2, !o3, elements <= 1 << 38 else { return nil }
        let (tokens, layers, groupSize, dtype) = (h.tokens, h.layers, h.groupSize, h.dtype)
        switch h.codec {
        case .shuffleZstd, .zstd:
            return elements * dtype.size
        case .int8:
            // int8 values, then f32 scales per layer (channels key scales and tokens value scales),
            // or a bf16 scale per row (Int8Body)
            return Int8Body.length(elements: elements, layers: layers, tokens: tokens, channels: channels, rowScales: h.int8RowScales)
        case .q4:
            guard groupSize > 0 else { return nil }
            let groups = (channels + groupSize - 1) / groupSize
            return rows * ((channels + 1) / 2) + rows * groups * 4
        case .hq:
            // a u16 per (row, head), then the key codes and the value codes, each stream byte-padded
            return 2 * rows * h.kvHeads + HadamardBody.streamLength(elements / 2, bits: h.keyBits)
                + HadamardBody.streamLength(elements / 2, bits: h.valueBits)
        }
    }
}

// MARK: - Lossless: values in their dtype, optionally byte-shuffled

/// Body of the lossless codecs: elements in order [layer][K|V][token][kvHead][headDim], each in
/// `dtype`, little-endian. With `shuffled`, byte b of element i sits at `b * count + i`
/// (byte planes, as Blosc's shuffle filter does), which lets zstd see the slowly varying sign
/// and exponent bytes together.
enum LosslessBody {
    static func encode(_ kv: KVTensors, dtype: ValueType, shuffled: Bool) -> [UInt8] {
        let block = kv.tokens * kv.channels  // values of one layer's K (or V)
        let count = kv.layers * 2 * block
        let size = dtype.size
        return [UInt8](unsafeUninitializedCapacity: count * size) { out, initialized in
            // [count][size] element scratch; one layer's K or V at a time
            var scratch = [UInt8](repeating: 0, count: block * size)
            for layer in 0..<kv.layers {
                for (part, source) in [kv.keys, kv.values].enumerated() {
                    let first = (layer * 2 + part) * block  // element index of this block in the body
                    source.withUnsafeBufferPointer { src in
                        scratch.withUnsafeMutableBytes { s in
                            // convertFromFloat32 only fails for non-float dtypes, which ValueType excludes
                            try? convertFromFloat32(src.baseAddress! + layer * block, count: block, to: dtype.dtype, into: s.baseAddress!)
                        }
                    }
                    scratch.withUnsafeBytes { s in
                        if shuffled {
                            for b in 0..<size {
                                let plane = out.baseAddress! + b * count + first
                                for i in 0..<block { plane[i] = s[i * size + b] }
                            }
                        } else {
                            (out.baseAddress! + first * size).initialize(from: s.bindMemory(to: UInt8.self).baseAddress!, count: block * size)
                        }
                    }
                }
            }
            initialized = count * size
        }
    }

    /// Decodes a body written by `encode` into K and V, each [layers][tokens][channels].
    static func decode(_ body: UnsafeRawBufferPointer, header h: RecordHeader, shuffled: Bool,
                       keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>) {
        let block = h.tokens * h.channels
        let count = h.layers * 2 * block
        let size = h.dtype.size
        let bytes = body.bindMemory(to: UInt8.self).baseAddress!
        for layer in 0..<h.layers {
            for part in 0..<2 {
                let first = (layer * 2 + part) * block
                let out = (part == 0 ? keys : values) + layer * block
                if !shuffled {
                    convertToFloat32(bytes + first * size, dtype: h.dtype.dtype, count: block, into: out)
                    continue
                }
                switch h.dtype {
                case .f16, .bf16:
                    let lo = bytes + first, hi = bytes + count + first
                    if h.dtype == .f16 {
                        for i in 0..<block { out[i] = float16BitsToFloat(UInt16(lo[i]) | UInt16(hi[i]) << 8) }
                    } else {
                        for i in 0..<block { out[i] = bfloat16BitsToFloat(UInt16(lo[i]) | UInt16(hi[i]) << 8) }
                    }
                case .f32:
                    let p0 = bytes + first, p1 = p0 + count, p2 = p1 + count, p3 = p2 + count
                    for i in 0..<block {
                        let bits = UInt32(p0[i]) | UInt32(p1[i]) << 8 | UInt32(p2[i]) << 16 | UInt32(p3[i]) << 24
                        out[i] = Float(bitPattern: bits)
                    }
                }
            }
        }
    }
}
