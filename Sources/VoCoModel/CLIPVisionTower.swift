import Foundation
import VoCoCompute

// MARK: - CLIP ViT, as transformers.CLIPVisionModel computes it

/// The vision tower: patch convolution (as one GEMM over unfolded patches), class token, learned
/// positions, `pre_layrnorm`, then pre-norm encoder layers up to the selected hidden state.
public final class CLIPVisionTower {
    struct Layer {
        let norm1Weight, norm1Bias: [Float]  // [vHidden]
        let query, key, value, output: WeightMatrix  // [vHidden][vHidden]
        let queryBias, keyBias, valueBias, outputBias: [Float]  // [vHidden]
        let norm2Weight, norm2Bias: [Float]  // [vHidden]
        let fc1: WeightMatrix  // [vInter][vHidden]
        let fc1Bias: [Float]  // [vInter]
        let fc2: WeightMatrix  // [vHidden][vInter]
        let fc2Bias: [Float]  // [vHidden]
    }

    public let config: CLIPVisionConfiguration
    /// Index into `hidden_states` (0 = `pre_layrnorm` output, i = output of layer i).
    public let selectedHiddenState: Int
    public let keepsClassToken: Bool
    let patchEmbedding: WeightMatrix  // [vHidden][3*patch*patch]
    let classEmbedding: [Float]  // [vHidden]
    let positionEmbedding: [Float]  // [1+P][vHidden]
    let preNormWeight, preNormBias: [Float]  // [vHidden]
    /// Only the layers that feed the selected hidden state.
    let layers: [Layer]

    /// Tokens out per image: P, or 1 + P with the class token.
    public var featureCount: Int { config.patchCount + (keepsClassToken ? 1 : 0) }

    init(config: CLIPVisionConfiguration, selectedHiddenState: Int, keepsClassToken: Bool, weights w: WeightLoader) {
        self.config = config
        self.selectedHiddenState = selectedHiddenState
        self.keepsClassToken = keepsClassToken
        let h = config.hiddenSize, p = config.patchSize, inter = config.intermediateSize
        patchEmbedding = w.matrix("embeddings.patch_embedding.weight", rows: h, columns: 3 * p * p, shape: [h, 3, p, p])
        classEmbedding = w.vector("embeddings.class_embedding", count: h)
        positionEmbedding = w.vector("embeddings.position_embedding.weight", shape: [1 + config.patchCount, h])
        preNormWeight = w.vector("pre_layrnorm.weight", count: h)
        preNormBias = w.vector("pre_layrnorm.bias", count: h)
        layers = (0..<selectedHiddenState).map { i in
            let l = w.scoped("encoder.layers.\(i).")
            return Layer(
                norm1Weight: l.vector("layer_norm1.weight", count: h), norm1Bias: l.vector("layer_norm1.bias", count: h),
                query: l.matrix("self_attn.q_proj.weight", rows: h, columns: h),
                key: l.matrix("self_attn.k_proj.weight", rows: h, columns: h),
                value: l.matrix("self_attn.v_proj.weight", rows: h, columns: h),
                output: l.matrix("self_attn.out_proj.weight", rows: h, columns: h),
                queryBias: l.vector("self_attn.q_proj.bias", count: h), keyBias: l.vector("self_attn.k_proj.bias", count: h),
                valueBias: l.vector("self_attn.v_proj.bias", count: h), outputBias: l.vector("self_attn.out_proj.bias", count: h),
                norm2Weight: l.vector("layer_norm2.weight", count: h), norm2Bias: l.vector("layer_norm2.bias", count: h),
                fc1: l.matrix("mlp.fc1.weight", rows: inter, columns: h), fc1Bias: l.vector("mlp.fc1.bias", count: inter),
                fc2: l.matrix("mlp.fc2.weight", rows: h, columns: inter), fc2Bias: l.vector("mlp.fc2.bias", count: h))
        }
    }

    // MARK: - Forward

    /// Selected features of `images` images: pixels `[images][3][H][W]` (already preprocessed)
    /// in, `[images][featureCount][vHidden]` out. Every linear layer is one GEMM over all tokens
    /// of all images; attention runs per image and head.
    public func features(pixels: UnsafePointer<Float>, images: Int, compute: ComputeContext) -> [Float] {
        guard images > 0 else { return [] }
        let h = config.hiddenSize, p = config.patchSize, side = config.patchesPerSide, size = config.imageSize
        let patches = config.patchCount, tokens = 1 + patches, rows = images * tokens
        let patchWidth = 3 * p * p

        let arena = ScratchArena()
        defer { arena.release() }

        // Unfold every patch into a row ordered (channel, y, x), as the conv kernel is stored.
        let unfolded = arena.floats(images * patches * patchWidth)  // [images*P][3*p*p]
        for image in 0..<images {
            let src = pixels + image * 3 * size * size  // [3][H][W]
            for py in 0..<side { for px in 0..<side {
                let row = unfolded + (image * patches + py * side + px) * patchWidth
                for c in 0..<3 { for y in 0..<p {
                    (row + (c * p + y) * p).update(from: src + (c * size + py * p + y) * size + px * p, count: p)
                } }
            } }
        }
        let embedded = arena.floats(images * patches * h)  // [images*P][vHidden]
        compute.linear(unfolded, rows: images * patches, patchEmbedding, into: embedded)

        let x = arena.floats(rows * h)  // [images][1+P][vHidden]
        for image in 0..<images {
            let base = x + image * tokens * h
            base.update(from: classEmbedding, count: h)
            (base + h).update(from: embedded + image * patches * h, count: patches * h)
            Kernels.add(positionEmbedding, to: base, count: tokens * h)
        }
        let eps = Float(config.layerNormEps)
        Kernels.layerNorm(x, rows: rows, width: h, weight: preNormWeight, bias: preNormBias, epsilon: eps, into: x)

        let normed = arena.floats(rows * h)  // [rows][vHidden]
        let q = arena.floats(rows * h), k = arena.floats(rows * h), v = arena.floats(rows * h)  // [rows][vHidden]
        let attended = arena.floats(rows * h)  // [rows][vHidden]
        let hidden = arena.floats(rows * config.intermediateSize)  // [rows][vInter]
        let shape = AttentionShape(heads: config.numAttentionHeads, kvHeads: config.numAttentionHeads, headDim: config.headDim)
        let scores = ScratchBuffer()
        let blocks = (0..<images).map { i in
            AttentionBlock(queries: q + i * tokens * h, keys: k + i * tokens * h, values: v + i * tokens * h,
                           output: attended + i * tokens * h, queryCount: tokens, keyCount: tokens, causalOffset: nil)
        }
        for layer in layers {
            Kernels.layerNorm(x, rows: rows, width: h, weight: layer.norm1Weight, bias: layer.norm1Bias, epsilon: eps, into: normed)
            compute.linear(normed, rows: rows, layer.query, bias: layer.queryBias, into: q)
            compute.linear(normed, rows: rows, layer.key, bias: layer.keyBias, into: k)
            compute.linear(normed, rows: rows, layer.value, bias: layer.valueBias, into: v)
            blocks.withUnsafeBufferPointer {
                Attention.run($0, shape: shape, multiplier: compute.multiplier, threads: compute.threads, scratch: scores)
            }
            compute.linear(attended, rows: rows, layer.output, bias: layer.outputBias, into: x, accumulate: true)
            Kernels.layerNorm(x, rows: rows, width: h, weight: layer.norm2Weight, bias: layer.norm2Bias, epsilon: eps, into: normed)
            compute.linear(normed, rows: rows, layer.fc1, bias: layer.fc1Bias, into: hidden)
            switch config.hiddenAct {
            case .quickGELU: Kernels.quickGELU(hidden, count: rows * config.intermediateSize)
            case .gelu: Kernels.gelu(hidden, count: rows * config.intermediateSize)
            }
            compute.linear(hidden, rows: rows, layer.fc2, bias: layer.fc2Bias, into: x, accumulate: true)
        }

        // The selected hidden state, with or without the class token.
        let skip = keepsClassToken ? 0 : 1, kept = tokens - skip
        return [Float](unsafeUninitializedCapacity: images * kept * h) { out, initialized in  // [images][featureCount][vHidden]
            for image in 0..<images {
                (out.baseAddress! + image * kept * h).initialize(from: x + (image * tokens + skip) * h, count: kept * h)
            }
            initialized = images * kept * h
        }
    }
}
