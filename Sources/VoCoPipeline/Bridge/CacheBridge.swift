import Foundation
import SafeTensors
import VoCoModel
import VoCoStore

// MARK: - The engine's cache <-> the store's tensors
//
// The model side (`VoCoCache`) and the storage side (`KVTensors`) each keep the one type their
// code needs and import nothing of the other; this file is the only place they meet.

extension KVTensors {
    /// The store's form of an engine cache: the same buffers, with the head split named.
    public init(_ cache: VoCoCache, kvHeads: Int, headDim: Int) throws {
        guard kvHeads > 0, headDim > 0, kvHeads * headDim == cache.width else {
            throw PipelineError.cacheShape(reason: "a cache row of width \(cache.width) is not \(kvHeads) KV heads x \(headDim)")
        }
        self.init(layers: cache.layers, tokens: cache.rows, kvHeads: kvHeads, headDim: headDim, firstPosition: cache.firstPosition,
                  keysBeforeRoPE: true, keys: cache.keys, values: cache.values)
    }
}

extension VoCoCache {
    /// An engine cache from stored tensors; only caches with K before RoPE can be placed.
    public init(_ kv: KVTensors, mode: VoCoMode) throws {
        guard kv.keysBeforeRoPE else {
            throw PipelineError.cacheShape(reason: "the stored keys were taken after RoPE; the query pass needs them before")
        }
        try self.init(mode: mode, layers: kv.layers, rows: kv.tokens, width: kv.channels, firstPosition: kv.firstPosition,
                      keys: kv.keys, values: kv.values)
    }
}

extension AnsweringModel {
    /// The store's cache of `cache` (as the store's type).
    public func storeTensors(_ cache: VoCoCache) throws -> KVTensors {
        try KVTensors(cache, kvHeads: engine.text.numKeyValueHeads, headDim: engine.text.headDim)
    }

    /// An engine cache from a verified stored record of this model.
    public func engineCache(_ kv: KVTensors) throws -> VoCoCache {
        try VoCoCache(kv, mode: settings.mode)
    }

    /// The descriptor a store keeps for this model: shapes, k, mode, layout, the dtype of its
    /// weights (and so of its caches), and the files its fingerprint binds.
    public func descriptor(fingerprint: ModelFingerprint) throws -> ModelDescriptor {
        let weights = try TensorDirectory(directory: directory)
        guard let dtype = weights.dominantFloatType.flatMap(ValueType.init) else {
            throw PipelineError.cacheShape(reason: "\(directory): the weights are not F32, F16 or BF16, so no record dtype follows from them")
        }
        let text = engine.text
        let rows: Int
        switch settings.mode {
        case .voco: rows = settings.numTokens
        case .avgpool: rows = 1
        case .full: rows = 1 + settings.compressionPrefixIds.count + (engine.vision?.featureCount ?? 0)
        }
        return ModelDescriptor(fingerprint: fingerprint.fingerprint, name: (directory as NSString).lastPathComponent,
                               layers: text.numHiddenLayers, kvHeads: text.numKeyValueHeads, headDim: text.headDim,
                               tokensPerImage: rows, mode: settings.mode.rawValue, layout: settings.layout.rawValue,
                               dtype: dtype.name, files: fingerprint.files)
    }
}
