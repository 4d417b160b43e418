import Foundation
import Testing
import VoCoModel
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB

/// The engine's caches go into the store and come back as the same engine caches, and a
/// question answered from them gets the same tokens.
@Suite struct CacheBridgeTests {
    @Test func aCachePutInTheStoreComesBackAndAnswersTheSame() throws {
        let model = try bundledModel.get()
        let paths = ["Samples/00003.png", "Samples/00024.png"].map { (repositoryRoot as NSString).appendingPathComponent($0) }
        let compressed = try model.compress(imagePaths: paths)
        let fingerprint = try ModelFingerprint.compute(directory: model.directory)
        let descriptor = try model.descriptor(fingerprint: fingerprint)
        #expect(descriptor.fingerprint == fingerprint.fingerprint && descriptor.dtype == "F16")
        #expect(descriptor.layers == model.engine.text.numHiddenLayers && descriptor.tokensPerImage == model.settings.numTokens)
        #expect(descriptor.mode == "voco" && descriptor.layout == "sequential")

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("voco-bridge-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try LMDBStore.open(path: directory, options: StoreOptions(create: true))
        try store.register(descriptor)
        let records = try compressed.map { image in
            try store.encode(try model.storeTensors(image.cache), image: Digest(bytes: image.digest)!, model: descriptor)
        }
        try store.write { txn in for record in records { try txn.put(record) } }

        let stored = try store.read { txn in
            try compressed.map { image in try #require(try txn.record(image: Digest(bytes: image.digest)!, model: descriptor.fingerprint)) }
        }
        let caches = try stored.map { try model.engineCache($0) }
        for (cache, image) in zip(caches, compressed) {
            // F16 model: the stored values are the engine's rounded to F16, nothing else.
            #expect(cache.keys == image.cache.keys.map { Float(Float16($0)) })
            #expect(cache.values == image.cache.values.map { Float(Float16($0)) })
            #expect(cache.rows == image.cache.rows && cache.firstPosition == image.cache.firstPosition && cache.mode == image.cache.mode)
        }
        let question = "Which image has a blue circle?"
        let fresh = try model.answer(question, caches: compressed.map(\.cache))
        let fromStore = try model.answer(question, caches: caches)
        #expect(fromStore.tokens == fresh.tokens, "\(fromStore.text) vs \(fresh.text)")
    }

    @Test func aCacheOfAnotherShapeIsRefusedByName() throws {
        let cache = try VoCoCache(mode: .voco, layers: 1, rows: 1, width: 6, firstPosition: 0, keys: [Float](repeating: 0, count: 6),
                                  values: [Float](repeating: 0, count: 6))
        #expect { _ = try KVTensors(cache, kvHeads: 4, headDim: 2) } throws: { "\($0)".contains("width 6") }
        var kv = try KVTensors(cache, kvHeads: 3, headDim: 2)
        kv.keysBeforeRoPE = false
        #expect { _ = try VoCoCache(kv, mode: .voco) } throws: { "\($0)".contains("after RoPE") }
    }
}
