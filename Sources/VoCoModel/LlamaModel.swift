import Foundation
import VoCoCompute

// MARK: - LLaMA decoder over input embeddings

/// The LLaMA language model. It takes input embeddings (the vision side never reaches inside)
/// and a `KVCache`; it knows nothing of images or VoCo.
public final class LlamaModel {
    struct Layer {
        let inputNorm: [Float]  // [hidden]
        let query: WeightMatrix  // [heads*headDim][hidden]
        let key, value: WeightMatrix  // [kvHeads*headDim][hidden]
        let output: WeightMatrix  // [hidden][heads*headDim]
        let postAttentionNorm: [Float]  // [hidden]
        let gate, up: WeightMatrix  // [intermediate][hidden]
        let down: WeightMatrix  // [hidden][intermediate]
        /// [key, value, query] and [gate, up]: the products of one input, run as one region.
        let keyValueQuery: [WeightMatrix], gateUp: [WeightMatrix]

        init(inputNorm: [Float], query: WeightMatrix, key: WeightMatrix, value: WeightMatrix, output: WeightMatrix,
             postAttentionNorm: [Float], gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix) {
            self.inputNorm = inputNorm
            self.query = query
            self.key = key
            self.value = value
            self.output = output
            self.postAttentionNorm = postAttentionNorm
            self.gate = gate
            self.up = up
            self.down = down
            keyValueQuery = [key, value, query]
            gateUp = [gate, up]
        }
    }

    public let config: LlamaConfiguration
    public let rotary: RotaryEmbedding
    let embedTokens: WeightMatrix  // [vocab][hidden]
    let layers: [Layer]
    let finalNorm: [Float]  // [hidden]
    let lmHead: WeightMatrix  // [vocab][hidden], embedTokens when tied
    let attentionShape: AttentionShape

    init(config c: LlamaConfiguration, weights w: WeightLoader) {
        config = c
        rotary = RotaryEmbedding(headDim: c.headDim, theta: c.ropeTheta)
        attentionShape = AttentionShape(heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim)
        let h = c.hiddenSize
        embedTokens = w.matrix("model.embed_tokens.weight", rows: c.vocabSize, columns: h)
        layers = (0..<c.numHiddenLayers).map { i in
            let l = w.scoped("model.layers.\(i).")
            return Layer(
                inputNorm: l.vector("input_layernorm.weight", count: h),
                query: l.matrix("self_attn.q_proj.weight", rows: c.queryWidth, columns: h),
                key: l.matrix("self_attn.k_proj.weight", rows: c.kvWidth, columns: h),
                value: l.matrix("self_attn.v_proj.weight", rows: c.kvWidth, columns: h),
                output: l.matrix("self_attn.o_proj.weight", rows: h, columns: c.queryWidth),
                postAttentionNorm: l.vector("post_attention_layernorm.weight", count: h),
                gate: l.matrix("mlp.gate_proj.weight", rows: c.intermediateSize, columns: h),
                up: l.matrix("mlp.up_proj.weight", rows: c.intermediateSize, columns: h),
                down: l.matrix("mlp.down_proj.weight", rows: h, columns: c.intermediateSize))
        }
        finalNorm = w.vector("model.norm.weight", count: h)
        lmHead = c.tieWordEmbeddings ? embedTokens : w.matrix("lm_head.weight", rows: c.vocabSize, columns: h)
    }

    // MARK: - Embeddings

    /// Writes the embedding of `token` (`[hidden]`); the caller checks the id's range.
    @inline(__always)
    public func embed(_ token: Int, into row: UnsafeMutablePointer<Float>) {
        embedTokens.widenRows(token..<(token + 1), into: row)
    }

    // MARK: - Forward

    /// Runs `length` new rows of each of `sequences` sequences through every layer, in place
    /// in `x` (`[sequences*length][hidden]`), at positions `firstPosition ..< firstPosition +
    /// length`. The rows attend causally to the cache's `count` earlier rows and to each other,
    /// and are appended to the cache. `observe(layer, keys, values)` sees every layer's K before
    /// RoPE and V (`[sequences*length][kvWidth]` each). With `keysAndValuesOnlyInLastLayer`
    /// the last layer stops after its K/V (the compression pass needs nothing else).
    func forward(_ x: UnsafeMutablePointer<Float>, sequences: Int, length: Int, firstPosition: Int,
                 cache: KVCache, workspace ws: LlamaWorkspace, compute: ComputeContext,
                 observe: ((_ layer: Int, _ keys: UnsafePointer<Float>, _ values: UnsafePointer<Float>) -> Void)? = nil,
                 keysAndValuesOnlyInLastLayer: Bool = false) {
        let c = config, rows = sequences * length, h = c.hiddenSize
        let qw = c.queryWidth, kw = c.kvWidth, past = cache.count
        precondition(past + length <= cache.capacity && sequences == cache.sequences, "KV cache too small (caller checks)")
        ws.reserve(rows: rows, length: length, keys: past + length, sequences: sequences, config: c, threads: compute.threads)
        let normed = ws.normed.pointer, q = ws.query.pointer, k = ws.key.pointer, v = ws.value.pointer
        let attended = ws.attended.pointer, gate = ws.gate.pointer, up = ws.up.pointer
        let cos = ws.cos.pointer, sin = ws.sin.pointer
        rotary.fillTable(positions: firstPosition, count: length, cos: cos, sin: sin)
        let eps = Float(c.rmsNormEps)

        for (index, layer) in layers.enumerated() {
            // Attention: x += o_proj(attend(rope(q), cache + rope(k), v))
            Kernels.rmsNorm(x, rows: rows, width: h, weight: layer.inputNorm, epsilon: eps, into: normed)
            let kvOnly = keysAndValuesOnlyInLastLayer && index == layers.count - 1
            linear(normed, rows: rows, layer.keyValueQuery, into: k, v, q, count: kvOnly ? 2 : 3, compute: compute)
            observe?(index, k, v)
            if kvOnly { break }
            rotary.rotate(q, rows: rows, rowStride: qw, heads: c.numAttentionHeads, cos: cos, sin: sin, tableRows: length)
            rotary.rotate(k, rows: rows, rowStride: kw, heads: c.numKeyValueHeads, cos: cos, sin: sin, tableRows: length)
            for s in 0..<sequences {
                (cache.keys(layer: index, sequence: s) + past * kw).update(from: k + s * length * kw, count: length * kw)
                (cache.values(layer: index, sequence: s) + past * kw).update(from: v + s * length * kw, count: length * kw)
                ws.blocks[s] = AttentionBlock(
                    queries: q + s * length * qw, keys: cache.keys(layer: index, sequence: s),
                    values: cache.values(layer: index, sequence: s), output: attended + s * length * qw,
                    queryCount: length, keyCount: past + length, causalOffset: past)
            }
            Attention.run(UnsafeBufferPointer(start: ws.blocks, count: sequences), shape: attentionShape,
                          multiplier: compute.multiplier, threads: compute.threads, scratch: ws.scores)
            compute.linear(attended, rows: rows, layer.output, into: x, accumulate: true)

            // MLP: x += down(silu(gate(x)) * up(x))
            Kernels.rmsNorm(x, rows: rows, width: h, weight: layer.postAttentionNorm, epsilon: eps, into: normed)
            linear(normed, rows: rows, layer.gateUp, into: gate, up, count: 2, compute: compute)
            Kernels.swiGLU(gate: gate, up: up, count: rows * c.intermediateSize)
            compute.linear(gate, rows: rows, layer.down, into: x, accumulate: true)
        }
        cache.count += length
    }

    /// The first `count` of `weights` applied to `x`, into the first `count` of `a, b, c`.
    @inline(__always)
    private func linear(_ x: UnsafePointer<Float>, rows: Int, _ weights: [WeightMatrix],
                        into a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>,
                        _ c: UnsafeMutablePointer<Float>? = nil, count: Int, compute: ComputeContext) {
        weights.withUnsafeBufferPointer { w in
            withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<Float>.self, capacity: 3) { outputs in
                outputs[0] = a
                outputs[1] = b
                outputs[2] = c ?? b
                compute.linear(x, rows: rows, UnsafeBufferPointer(rebasing: w[0..<count]),
                               into: UnsafeBufferPointer(rebasing: UnsafeBufferPointer(outputs)[0..<count]))
            }
        }
    }

    /// `lm_head(norm(x))` of `rows` rows (`[rows][hidden]`) into `logits` (`[rows][vocab]`).
    func logits(_ x: UnsafePointer<Float>, rows: Int, into logits: UnsafeMutablePointer<Float>,
                workspace ws: LlamaWorkspace, compute: ComputeContext) {
        let normed = ws.normed.reserve(rows * config.hiddenSize)  // [rows][hidden]
        Kernels.rmsNorm(x, rows: rows, width: config.hiddenSize, weight: finalNorm, epsilon: Float(config.rmsNormEps), into: normed)
        compute.linear(normed, rows: rows, lmHead, into: logits)
    }
}

// MARK: - Scratch of one forward pass

/// Reused buffers of `LlamaModel.forward`, grown only when a pass needs more rows or keys.
final class LlamaWorkspace {
    let normed = ScratchBuffer()  // [rows][hidden]
    let query = ScratchBuffer()  // [rows][heads*headDim]
    let key = ScratchBuffer()  // [rows][kvWidth]
    let value = ScratchBuffer()  // [rows][kvWidth]
    let attended = ScratchBuffer()  // [rows][heads*headDim]
    let gate = ScratchBuffer()  // [rows][intermediate]
    let up = ScratchBuffer()  // [rows][intermediate]
    let cos = ScratchBuffer(), sin = ScratchBuffer()  // [length][headDim/2]
    let scores = ScratchBuffer()  // [workers][length][keys]
    private(set) var blocks = UnsafeMutablePointer<AttentionBlock>.allocate(capacity: 1)  // [sequences]
    private var blockCapacity = 1

    deinit { blocks.deallocate() }

    func reserve(rows: Int, length: Int, keys: Int, sequences: Int, config c: LlamaConfiguration, threads: ComputeThreads) {
        normed.reserve(rows * c.hiddenSize)
        query.reserve(rows * c.queryWidth)
        key.reserve(rows * c.kvWidth)
        value.reserve(rows * c.kvWidth)
        attended.reserve(rows * c.queryWidth)
        gate.reserve(rows * c.intermediateSize)
        up.reserve(rows * c.intermediateSize)
        cos.reserve(length * c.headDim / 2)
        sin.reserve(length * c.headDim / 2)
        scores.reserve(Attention.scratchCount(maxQueries: length, maxKeys: keys, threads: threads))
        if sequences > blockCapacity {
            blocks.deallocate()
            blocks = .allocate(capacity: sequences)
            blockCapacity = sequences
        }
    }
}
