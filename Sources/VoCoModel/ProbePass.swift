import Foundation
import VoCoCompute

// MARK: - One short prompt over many single-image caches at once (the planner's probe)

extension VoCoEngine {
    /// For each cache on its own (one image placed by the model's layout, then `prompt`), the
    /// logits of `tokens` at the prompt's last position: `[caches.count][tokens.count]`. Runs
    /// `batch` caches as the sequences of one batched pass; every result equals what a
    /// `QuerySession` over that cache alone gives for the same prompt (up to the order of float sums).
    /// Each row ends with log(sum(exp(logits))) over the whole vocabulary, so that
    /// `row[i] - row.last` is the log-probability of `tokens[i]`.
    public func probeLogits(caches: [VoCoCache], prompt: [Int], tokens: [Int], batch: Int = 64) throws -> [[Float]] {
        let c = text, kw = c.kvWidth, h = c.hiddenSize, vocab = c.vocabSize
        guard !prompt.isEmpty else { throw ModelError.invalidArgument("a probe needs at least one prompt token") }
        for t in prompt + tokens where !(0..<vocab).contains(t) { throw ModelError.tokenOutOfRange(token: t, vocabularySize: vocab) }
        guard batch > 0 else { throw ModelError.invalidArgument("a probe batch must hold at least one cache, got \(batch)") }
        for (i, cache) in caches.enumerated() {
            guard cache.layers == c.numHiddenLayers, cache.width == kw else {
                throw ModelError.invalidCache(index: i, reason: "it has \(cache.layers) layers of width \(cache.width); this model needs \(c.numHiddenLayers) layers of width \(kw) (num_key_value_heads * head_dim)")
            }
            let needed = [cache.firstPosition, cache.rows, prompt.count].reduce(0, saturatingSum)
            guard needed <= c.maxPositionEmbeddings else { throw ModelError.exceedsContext(needed: needed, context: c.maxPositionEmbeddings) }
        }
        var results = [[Float]](repeating: [], count: caches.count)
        // Sequences of one pass share their positions: group caches by (first position, rows).
        var groups: [[Int]] = []
        var groupOf: [[Int]: Int] = [:]
        for (i, cache) in caches.enumerated() {
            let key = [cache.firstPosition, cache.rows]
            if let g = groupOf[key] { groups[g].append(i) } else { groupOf[key] = groups.count; groups.append([i]) }
        }
        let workspace = LlamaWorkspace()
        let hidden = ScratchBuffer(), last = ScratchBuffer(), logits = ScratchBuffer()
        let rotary = language.rotary, half = c.headDim / 2
        let cos = UnsafeMutablePointer<Float>.allocate(capacity: half), sin = UnsafeMutablePointer<Float>.allocate(capacity: half)
        defer { cos.deallocate(); sin.deallocate() }
        lock.lock()
        defer { lock.unlock() }
        for group in groups {
            var start = 0
            while start < group.count {
                let members = Array(group[start..<min(group.count, start + batch)])
                start += members.count
                let first = caches[members[0]], rows = first.rows, n = members.count, length = prompt.count
                let kv = KVCache(layers: c.numHiddenLayers, sequences: n, capacity: rows + length, width: kw)
                for (s, index) in members.enumerated() {
                    let cache = caches[index]
                    cache.keys.withUnsafeBufferPointer { keys in
                        cache.values.withUnsafeBufferPointer { values in
                            for r in 0..<rows {
                                rotary.fillTable(positions: cache.firstPosition + r, count: 1, cos: cos, sin: sin)
                                for layer in 0..<c.numHiddenLayers {
                                    let from = (layer * rows + r) * kw
                                    let k = kv.keys(layer: layer, sequence: s) + r * kw
                                    k.update(from: keys.baseAddress! + from, count: kw)
                                    rotary.rotate(k, heads: c.numKeyValueHeads, cos: cos, sin: sin)
                                    (kv.values(layer: layer, sequence: s) + r * kw).update(from: values.baseAddress! + from, count: kw)
                                }
                            }
                        }
                    }
                }
                kv.count = rows
                let x = hidden.reserve(n * length * h)  // [sequences][length][hidden]
                for s in 0..<n { for (i, t) in prompt.enumerated() { language.embed(t, into: x + (s * length + i) * h) } }
                language.forward(x, sequences: n, length: length, firstPosition: first.firstPosition + rows, cache: kv,
                                 workspace: workspace, compute: compute)
                let lastRows = last.reserve(n * h)
                for s in 0..<n { (lastRows + s * h).update(from: x + (s * length + length - 1) * h, count: h) }
                let out = logits.reserve(n * vocab)
                language.logits(lastRows, rows: n, into: out, workspace: workspace, compute: compute)
                for (s, index) in members.enumerated() {
                    let row = UnsafeBufferPointer(start: out + s * vocab, count: vocab)
                    try checkFinite(row, position: first.firstPosition + rows + length - 1)
                    let top = row.max() ?? 0
                    var sum: Double = 0
                    for v in row { sum += exp(Double(v - top)) }
                    results[index] = tokens.map { row[$0] } + [top + Float(log(sum))]
                }
            }
        }
        return results
    }
}
