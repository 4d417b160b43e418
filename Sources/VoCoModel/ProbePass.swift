import Foundation
import VoCoCompute

// MARK: - One short prompt over many single-image caches, batched (relevance probes)

extension VoCoEngine {
    /// For each cache in `caches`, the logits of the last token of `prompt` when the prompt is
    /// asked over that one cache alone (placed as the model's layout places a single image),
    /// restricted to `tokens`: `[caches.count][tokens.count]`. The caches run as the sequences
    /// of one batched forward pass, `batch` at a time, so a probe over a thousand images costs a
    /// few passes, not a thousand. Every result equals what `queryLogits(caches: [cache],
    /// tokens: prompt)` gives for that cache (up to the summation order of batched kernels).
    /// Caches of different row counts run in separate batches.
    public func probeLogits(caches: [VoCoCache], prompt: [Int], tokens: [Int], batch: Int = 64) throws -> [[Float]] {
        let c = text, kw = c.kvWidth
        guard !prompt.isEmpty else { throw ModelError.invalidArgument("a probe needs at least one prompt token") }
        for t in prompt + tokens where !(0..<c.vocabSize).contains(t) {
            throw ModelError.tokenOutOfRange(token: t, vocabularySize: c.vocabSize)
        }
        for (i, cache) in caches.enumerated() {
            guard cache.layers == c.numHiddenLayers, cache.width == kw else {
                throw ModelError.invalidCache(index: i, reason: "it has \(cache.layers) layers of width \(cache.width); this model needs \(c.numHiddenLayers) layers of width \(kw) (num_key_value_heads * head_dim)")
            }
        }
        var results = [[Float]](repeating: [], count: caches.count)
        // Same rows and first position: one placement, one batch.
        var groups: [[Int]: [Int]] = [:]
        for (i, cache) in caches.enumerated() { groups[[cache.rows, cache.firstPosition], default: []].append(i) }
        let size = max(1, min(batch, 4096))
        for (_, members) in groups.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            var start = 0
            while start < members.count {
                let chunk = Array(members[start..<min(start + size, members.count)])
                let rows = try probeChunk(chunk.map { caches[$0] }, prompt: prompt, tokens: tokens)
                for (index, row) in zip(chunk, rows) { results[index] = row }
                start += size
            }
        }
        return results
    }

    private func probeChunk(_ caches: [VoCoCache], prompt: [Int], tokens: [Int]) throws -> [[Float]] {
        let c = text, kw = c.kvWidth, h = c.hiddenSize, vocab = c.vocabSize
        let sequences = caches.count, first = caches[0]
        let placement = CachePlacement(caches: [first], layout: settings.layout)
        let needed = saturatingSum(placement.textStart, prompt.count)
        guard needed <= c.maxPositionEmbeddings else { throw ModelError.exceedsContext(needed: needed, context: c.maxPositionEmbeddings) }
        let capacity = first.rows + prompt.count
        guard saturatingProduct(c.numHiddenLayers, saturatingProduct(sequences, capacity), kw) <= ConfigLimits.maximumElements,
              saturatingProduct(sequences, prompt.count, max(h, c.intermediateSize, vocab)) <= ConfigLimits.maximumElements else {
            throw ModelError.invalidArgument("a probe batch of \(sequences) caches and \(prompt.count) tokens would not fit in memory")
        }
        let cache = KVCache(layers: c.numHiddenLayers, sequences: sequences, capacity: capacity, width: kw)
        let workspace = LlamaWorkspace()
        // Place each cache in its sequence at the single-image positions, K rotated there.
        let rotary = language.rotary, half = c.headDim / 2
        let cos = UnsafeMutablePointer<Float>.allocate(capacity: half), sin = UnsafeMutablePointer<Float>.allocate(capacity: half)
        defer { cos.deallocate(); sin.deallocate() }
        for r in 0..<first.rows {
            rotary.fillTable(positions: placement.starts[0] + r, count: 1, cos: cos, sin: sin)
            for (s, image) in caches.enumerated() {
                image.keys.withUnsafeBufferPointer { keys in
                    image.values.withUnsafeBufferPointer { values in
                        for layer in 0..<c.numHiddenLayers {
                            let from = (layer * image.rows + r) * kw
                            let k = cache.keys(layer: layer, sequence: s) + r * kw
                            k.update(from: keys.baseAddress! + from, count: kw)
                            rotary.rotate(k, heads: c.numKeyValueHeads, cos: cos, sin: sin)
                            (cache.values(layer: layer, sequence: s) + r * kw).update(from: values.baseAddress! + from, count: kw)
                        }
                    }
                }
            }
        }
        cache.count = first.rows
        let x = UnsafeMutablePointer<Float>.allocate(capacity: sequences * prompt.count * h)
        defer { x.deallocate() }
        let last = UnsafeMutablePointer<Float>.allocate(capacity: sequences * h)
        defer { last.deallocate() }
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: sequences * vocab)
        defer { logits.deallocate() }
        lock.lock()
        defer { lock.unlock() }
        for s in 0..<sequences {
            for (i, t) in prompt.enumerated() { language.embed(t, into: x + (s * prompt.count + i) * h) }
        }
        language.forward(x, sequences: sequences, length: prompt.count, firstPosition: placement.textStart, cache: cache,
                         workspace: workspace, compute: compute)
        for s in 0..<sequences { (last + s * h).update(from: x + (s * prompt.count + prompt.count - 1) * h, count: h) }
        language.logits(last, rows: sequences, into: logits, workspace: workspace, compute: compute)
        return try (0..<sequences).map { s in
            let row = UnsafeBufferPointer(start: logits + s * vocab, count: vocab)
            try checkFinite(row, position: placement.textStart + prompt.count - 1)
            return tokens.map { row[$0] }
        }
    }
}
