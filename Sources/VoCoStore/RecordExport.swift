import SafeTensors

// MARK: - One record as safetensors

public enum RecordExport {
    /// K and V of every layer as `layers.{i}.key` and `layers.{i}.value`, shape
    /// [tokens, kvHeads, headDim]: in the record's dtype for lossless codecs (exactly the stored
    /// values), in F32 for lossy ones (the dequantised values). The header goes into metadata.
    public static func safetensors(_ kv: KVTensors, header: RecordHeader) throws -> SafeTensorsWriter {
        var writer = SafeTensorsWriter(metadata: [
            "format": "voco-kv",
            "model": header.model.hex,
            "image": header.image.hex,
            "codec": header.codec.name,
            "dtype": header.dtype.name,
            "first_position": String(header.firstPosition),
            "keys_before_rope": String(header.keysBeforeRoPE),
        ])
        let dtype: DType = header.codec.isLossless ? header.dtype.dtype : .f32
        let block = kv.tokens * kv.channels
        for layer in 0..<kv.layers {
            let range = (layer * block)..<((layer + 1) * block)
            try writer.add("layers.\(layer).key", shape: [kv.tokens, kv.kvHeads, kv.headDim], floats: Array(kv.keys[range]), as: dtype)
            try writer.add("layers.\(layer).value", shape: [kv.tokens, kv.kvHeads, kv.headDim], floats: Array(kv.values[range]), as: dtype)
        }
        return writer
    }
}
