import Foundation
import VoCoCompute

// MARK: - The query pass (per question)

/// A question's state: the placed image caches (K rotated at their placed positions) and the
/// text so far, in one preallocated KV cache. `append` runs text tokens through the model and
/// returns their logits; appending one token at a time is incremental decoding, which never
/// allocates.
public final class QuerySession {
    public let engine: VoCoEngine
    public let placement: CachePlacement
    /// Rows taken by the placed caches.
    public let imageRows: Int
    /// Text tokens appended so far.
    public private(set) var textCount = 0
    let cache: KVCache
    let workspace = LlamaWorkspace()
    let hidden = ScratchBuffer()  // [tokens][hidden]
    let logitBuffer = ScratchBuffer()  // [tokens][vocab]

    /// Position of the next text token.
    public var nextPosition: Int { placement.textStart + textCount }
    /// Text tokens that still fit.
    public var remainingCapacity: Int { cache.remaining }

    /// Places `caches` by `layout` (default: the model's) in a cache with room for
    /// `textCapacity` text tokens (prompt and answer together).
    public init(engine: VoCoEngine, caches: [VoCoCache], layout: CacheLayout? = nil, textCapacity: Int) throws {
        let c = engine.text, kw = c.kvWidth
        for (i, cache) in caches.enumerated() {
            guard cache.layers == c.numHiddenLayers, cache.width == kw else {
                throw ModelError.invalidCache(index: i, reason: "it has \(cache.layers) layers of width \(cache.width); this model needs \(c.numHiddenLayers) layers of width \(kw) (num_key_value_heads * head_dim)")
            }
        }
        guard textCapacity >= 0 else { throw ModelError.invalidArgument("textCapacity must be >= 0, got \(textCapacity)") }
        self.engine = engine
        placement = CachePlacement(caches: caches, layout: layout ?? engine.settings.layout)
        imageRows = caches.reduce(0) { $0 + $1.rows }
        guard textCapacity <= Int.max - imageRows, saturatingProduct(c.numHiddenLayers, imageRows + textCapacity, kw) <= ConfigLimits.maximumElements else {
            throw ModelError.invalidArgument("a query session for \(textCapacity) text tokens after \(imageRows) cache rows would not fit in memory")
        }
        cache = KVCache(layers: c.numHiddenLayers, sequences: 1, capacity: imageRows + textCapacity, width: kw)
        workspace.reserve(rows: 1, length: 1, keys: cache.capacity, sequences: 1, config: c, threads: engine.compute.threads)
        hidden.reserve(c.hiddenSize)
        logitBuffer.reserve(c.vocabSize)

        // Place: copy every row, rotating K at its placed position.
        let rotary = engine.language.rotary, half = c.headDim / 2
        let cos = UnsafeMutablePointer<Float>.allocate(capacity: half), sin = UnsafeMutablePointer<Float>.allocate(capacity: half)
        defer { cos.deallocate(); sin.deallocate() }
        var row = 0
        for (cacheValue, start) in zip(caches, placement.starts) {
            cacheValue.keys.withUnsafeBufferPointer { keys in
                cacheValue.values.withUnsafeBufferPointer { values in
                    for r in 0..<cacheValue.rows {
                        rotary.fillTable(positions: start + r, count: 1, cos: cos, sin: sin)
                        for layer in 0..<c.numHiddenLayers {
                            let from = (layer * cacheValue.rows + r) * kw
                            let k = cache.keys(layer: layer) + (row + r) * kw
                            k.update(from: keys.baseAddress! + from, count: kw)
                            rotary.rotate(k, heads: c.numKeyValueHeads, cos: cos, sin: sin)
                            (cache.values(layer: layer) + (row + r) * kw).update(from: values.baseAddress! + from, count: kw)
                        }
                    }
                }
            }
            row += cacheValue.rows
        }
        cache.count = imageRows
    }

    // MARK: - Appending text

    /// Runs `tokens` (ids, no BOS) at the next positions; returns the logits of every token
    /// (`[tokens][vocab]`) or of the last one (`[vocab]`). The buffer is valid until the next call.
    @discardableResult
    public func append(_ tokens: [Int], allLogits: Bool = false) throws -> UnsafeBufferPointer<Float> {
        let c = engine.text
        guard !tokens.isEmpty else { return UnsafeBufferPointer(start: logitBuffer.pointer, count: 0) }
        for t in tokens where !(0..<c.vocabSize).contains(t) { throw ModelError.tokenOutOfRange(token: t, vocabularySize: c.vocabSize) }
        guard tokens.count <= cache.remaining else {
            throw ModelError.contextFull(capacity: cache.capacity, needed: cache.count + tokens.count)
        }
        engine.lock.lock()
        defer { engine.lock.unlock() }
        let n = tokens.count, h = c.hiddenSize
        let x = hidden.reserve(n * h)  // [tokens][hidden]
        for (i, t) in tokens.enumerated() { engine.language.embed(t, into: x + i * h) }
        return run(x, count: n, allLogits: allLogits)
    }

    /// Appends one token and returns the logits of it (`[vocab]`); the decode step.
    @discardableResult
    public func append(token: Int) throws -> UnsafeBufferPointer<Float> {
        let c = engine.text
        guard (0..<c.vocabSize).contains(token) else { throw ModelError.tokenOutOfRange(token: token, vocabularySize: c.vocabSize) }
        guard cache.remaining >= 1 else { throw ModelError.contextFull(capacity: cache.capacity, needed: cache.count + 1) }
        engine.lock.lock()
        defer { engine.lock.unlock() }
        engine.language.embed(token, into: hidden.pointer)
        return run(hidden.pointer, count: 1, allLogits: false)
    }

    private func run(_ x: UnsafeMutablePointer<Float>, count n: Int, allLogits: Bool) -> UnsafeBufferPointer<Float> {
        let c = engine.text, vocab = c.vocabSize
        engine.language.forward(x, sequences: 1, length: n, firstPosition: nextPosition, cache: cache,
                                workspace: workspace, compute: engine.compute)
        textCount += n
        let rows = allLogits ? n : 1
        let logits = logitBuffer.reserve(rows * vocab)  // [rows][vocab]
        engine.language.logits(x + (n - rows) * c.hiddenSize, rows: rows, into: logits, workspace: workspace, compute: engine.compute)
        return UnsafeBufferPointer(start: logits, count: rows * vocab)
    }
}

extension VoCoEngine {
    /// The query pass: logits (`[tokens][vocab]`) of `tokens` after `caches` placed by `layout`.
    public func queryLogits(caches: [VoCoCache], layout: CacheLayout? = nil, tokens: [Int]) throws -> [Float] {
        let session = try QuerySession(engine: self, caches: caches, layout: layout, textCapacity: tokens.count)
        return Array(try session.append(tokens, allLogits: true))
    }
}
