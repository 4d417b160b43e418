import Foundation
import Testing
@testable import VoCoStore

@Suite struct KVStoreTests {
    // MARK: - Refusing bad records

    @Test func oneCorruptedByteAnywhereIsRefused() throws {
        let model = tinyModel()
        let store = try makeStore(models: [model])
        let image = SyntheticKV.imageDigest(1)
        try store.put(tinyCache(1, model: model), image: image, model: model.fingerprint)
        let key = RecordKey(model: model.fingerprint, image: image, codec: .shuffleZstd)
        let good = try #require(try store.read { try $0.txn.get(store.databases.records, key.bytes).map { Array($0) } })
        struct Rollback: Error {}
        #expect(throws: Rollback.self) {
            try store.write { txn in
                var variants = (0..<good.count).map { i -> [UInt8] in
                    var bad = good
                    bad[i] ^= 0x10
                    return bad
                }
                variants += [Array(good.dropLast()), good + [0]]  // truncated, one byte too many
                for bad in variants {
                    try txn.txn.put(store.databases.records, key.bytes, bad)
                    #expect {
                        _ = try txn.record(image: image, model: model.fingerprint)
                    } throws: { error in
                        guard case let .corruptRecord(_, keyText, named, _) = error as? StoreError else { return false }
                        return keyText == key.description && named == image && "\(error)".contains(image.hex)
                    }
                }
                throw Rollback()  // the write transaction is dropped, the good record stays
            }
        }
        #expect(try store.get(image: image, model: model.fingerprint) != nil)
        #expect(try store.verify().failures.isEmpty)
    }

    @Test func aRecordIsNeverServedToAnotherModel() throws {
        let a = tinyModel(seed: 1), b = tinyModel(seed: 2), c = tinyModel(seed: 3, layers: 3)
        let store = try makeStore(models: [a, b, c])
        let image = SyntheticKV.imageDigest(2)
        try store.put(tinyCache(2, model: a), image: image, model: a.fingerprint)
        #expect(try store.get(image: image, model: b.fingerprint) == nil)  // no record for b

        // A's record copied under B's key: the header names A, so B's read refuses it.
        let bytesA = try #require(try store.read { try $0.txn.get(store.databases.records, RecordKey(model: a.fingerprint, image: image, codec: .shuffleZstd).bytes).map { Array($0) } })
        try store.write { try $0.txn.put(store.databases.records, RecordKey(model: b.fingerprint, image: image, codec: .shuffleZstd).bytes, bytesA) }
        #expect { _ = try store.get(image: image, model: b.fingerprint) } throws: { "\($0)".contains("names model \(a.fingerprint.hex)") }

        // A record that names C but has A's shapes (2 layers, C has 3) is refused too.
        let forged = try RecordCoder.encode(tinyCache(2, model: a), model: c.fingerprint, image: image, dtype: .f16, settings: .default)
        try store.write { try $0.txn.put(store.databases.records, RecordKey(model: c.fingerprint, image: image, codec: .shuffleZstd).bytes, forged) }
        #expect { _ = try store.get(image: image, model: c.fingerprint) } throws: { "\($0)".contains("differs from model") }

        // And putting a cache of the wrong shape for a model is refused before it is stored.
        #expect(throws: StoreError.self) { try store.put(tinyCache(3, model: a), image: image, model: c.fingerprint) }
        #expect(try store.verify().failures.map(\.model) == [b.fingerprint.hex, c.fingerprint.hex].sorted())
    }

    @Test func recordsNeedARegisteredModel() throws {
        let store = try makeStore(models: [])
        let model = tinyModel()
        #expect { try store.put(tinyCache(1, model: model), image: SyntheticKV.imageDigest(1), model: model.fingerprint) } throws: { error in
            if case .modelNotRegistered = error as? StoreError { return true } else { return false }
        }
        try store.write { try $0.register(model) }
        // The same fingerprint with other shapes is refused.
        var other = model
        other.layers = 5
        #expect(throws: StoreError.self) { try store.write { try $0.register(other) } }
    }

    // MARK: - Opening

    @Test func schemaVersionMismatchIsRefusedWithItsError() throws {
        let path: String
        do {
            let store = try makeStore()
            path = store.path
            try store.setMeta("schema_version", "2")
        }
        #expect { _ = try KVStore(path: path) } throws: { error in
            guard case let .schemaMismatch(p, found, expected) = error as? StoreError else { return false }
            return p == path && found == "2" && expected == KVStore.schemaVersion && "\(error)".contains("ingest into a new store")
        }
    }

    @Test func openingWhatIsNotAStoreSaysSo() throws {
        let missing = temporaryDirectory("missing")
        #expect(throws: StoreError.noStore(path: missing)) { _ = try KVStore(path: missing, options: StoreOptions(readOnly: true)) }
        #expect(throws: StoreError.noStore(path: missing)) { _ = try KVStore(path: missing) }
        let path: String
        do { path = try makeStore(codec: CodecSettings(codec: .int8)).path }
        #expect(throws: StoreError.self) { _ = try KVStore(path: path, options: StoreOptions(codec: .default)) }
        #expect(try KVStore(path: path, options: StoreOptions(readOnly: true)).codec.codec == .int8)

        // Another program's LMDB environment is left alone.
        let foreign = temporaryDirectory("foreign")
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        do {
            let environment = try LMDBEnvironment(path: foreign, readOnly: false, newMapSize: 1 << 20, mapSizeLimit: 1 << 20, maxDatabases: 2)
            _ = try environment.openDatabases(["theirs"], create: true)
        }
        #expect { _ = try KVStore(path: foreign) } throws: { error in
            if case .notAStore = error as? StoreError { return "\(error)".contains(foreign) } else { return false }
        }
        #expect(throws: StoreError.self) { _ = try KVStore(path: foreign, options: StoreOptions(readOnly: true)) }
    }

    @Test func readOnlyStoresRefuseWrites() throws {
        let path: String
        do { path = try makeStore().path }
        let store = try KVStore(path: path, options: StoreOptions(readOnly: true))
        #expect(throws: StoreError.readOnly(path: path)) { try store.write { try $0.removeCollection("x") } }
    }

    // MARK: - Growth and failed writes

    @Test func theMapGrowsWhenFullWithoutLosingTheWrite() throws {
        let model = SyntheticKV.model(layers: 4, kvHeads: 4, headDim: 64, tokensPerImage: 8, dtype: .f32)
        let store = try makeStore(codec: CodecSettings(codec: .zstd, zstdLevel: 1), models: [model]) { $0.initialMapSize = 256 << 10 }
        let initial = store.mapSize
        // 24 records of ~64 KiB of noisy F32 (barely compressible): several doublings of a 256 KiB map.
        let batch = (0..<24).map { (SyntheticKV.imageDigest($0), SyntheticKV.make(layers: 4, tokens: 8, kvHeads: 4, headDim: 64, seed: UInt64($0))) }
        try store.putBatch(batch.map { (image: $0.0, kv: $0.1) }, model: model.fingerprint)
        #expect(store.mapSize > initial)
        for (image, kv) in batch { #expect(try store.get(image: image, model: model.fingerprint) == kv) }
    }

    @Test func nothingStoredIsLostWhenAWriteFails() throws {
        let model = SyntheticKV.model(layers: 4, kvHeads: 4, headDim: 64, tokensPerImage: 8, dtype: .f32)
        let store = try makeStore(codec: CodecSettings(codec: .zstd, zstdLevel: 1), models: [model]) {
            $0.initialMapSize = 256 << 10
            $0.mapSizeLimit = 512 << 10
        }
        let cache = { (n: Int) in SyntheticKV.make(layers: 4, tokens: 8, kvHeads: 4, headDim: 64, seed: UInt64(n)) }
        try store.putBatch((0..<2).map { (SyntheticKV.imageDigest($0), cache($0)) }, model: model.fingerprint)

        // 1. A batch with one bad cache stores none of it.
        var bad = cache(3)
        bad.keys.removeLast()
        #expect(throws: StoreError.self) {
            try store.putBatch([(SyntheticKV.imageDigest(2), cache(2)), (SyntheticKV.imageDigest(3), bad)], model: model.fingerprint)
        }
        #expect(try store.get(image: SyntheticKV.imageDigest(2), model: model.fingerprint) == nil)

        // 2. A transaction that throws after writing keeps nothing.
        struct Abort: Error {}
        #expect(throws: Abort.self) {
            try store.write { txn in
                try txn.deleteRecord(image: SyntheticKV.imageDigest(0), model: model.fingerprint)
                try txn.append([SyntheticKV.imageDigest(0)], to: "never")
                throw Abort()
            }
        }

        // 3. A batch that cannot fit under the map limit fails with mapFull and keeps nothing.
        #expect { try store.putBatch((10..<30).map { (SyntheticKV.imageDigest($0), cache($0)) }, model: model.fingerprint) } throws: { error in
            if case .mapFull = error as? StoreError { return "\(error)".contains(store.path) } else { return false }
        }
        #expect(try store.get(image: SyntheticKV.imageDigest(10), model: model.fingerprint) == nil)

        for n in 0..<2 { #expect(try store.get(image: SyntheticKV.imageDigest(n), model: model.fingerprint) == cache(n)) }
        #expect(try store.read { try $0.collections() }.isEmpty)
        #expect(try store.verify().failures.isEmpty)
        // The store still takes writes that fit.
        try store.put(cache(40), image: SyntheticKV.imageDigest(40), model: model.fingerprint)
    }

    // MARK: - Collections, images, gc

    @Test func removeAndGCDropOnlyWhatNoCollectionRefersTo() throws {
        let model = tinyModel()
        let store = try makeStore(models: [model])
        let images = (0..<5).map { SyntheticKV.imageDigest($0) }
        try store.putBatch(images.enumerated().map { (image: $0.element, kv: tinyCache($0.offset, model: model)) }, model: model.fingerprint)
        try store.write { txn in
            for (n, image) in images.enumerated() {
                try txn.putImage(image, ImageInfo(byteCount: 100 + n, format: "png", width: 4, height: 3, sourceNames: ["\(n).png"]))
            }
            #expect(try txn.append([images[0], images[1], images[2]], to: "a") == [0, 1, 2])
            #expect(try txn.append([images[3], images[2], images[3]], to: "b") == [0, 1, 0])  // duplicates keep their ordinal
            #expect(try txn.append([images[4], images[0]], to: "a") == [3, 0])
        }
        #expect(try store.write { try $0.removeCollection("a") } == 4)
        #expect(try store.read { try $0.members(of: "b").map(\.image) } == [images[3], images[2]])

        let dry = try store.gc(dryRun: true)
        #expect(dry.recordsRemoved == 3 && dry.imagesRemoved == 3 && dry.dryRun)
        #expect(try store.stats().records == 5)
        let report = try store.gc()
        #expect(report.recordsRemoved == 3 && report.imagesRemoved == 3 && report.bytesFreed > 0)
        for (n, image) in images.enumerated() {
            let kept = n == 2 || n == 3
            #expect((try store.get(image: image, model: model.fingerprint) != nil) == kept)
            #expect((try store.read { try $0.image(image) } != nil) == kept)
        }
        #expect(try store.gc().recordsRemoved == 0)
    }

    @Test func collectionsPageInOrderAndImagesMergeSourceNames() throws {
        let store = try makeStore()
        let images = (0..<7).map { SyntheticKV.imageDigest($0) }
        try store.write { txn in
            try txn.append(images, to: "photos")
            try txn.append([images[0]], to: "a b/c")
            try txn.putImage(images[0], ImageInfo(byteCount: 10, format: "jpeg", width: 2, height: 2, sourceNames: ["x.jpg"], firstSeen: "2026-01-01T00:00:00Z"))
            try txn.putImage(images[0], ImageInfo(byteCount: 10, format: "jpeg", width: 2, height: 2, sourceNames: ["y.jpg", "x.jpg"]))
        }
        try store.read { txn in
            #expect(try txn.collections() == [CollectionSummary(name: "a b/c", count: 1), CollectionSummary(name: "photos", count: 7)])
            #expect(try txn.members(of: "photos", offset: 2, limit: 3).map(\.image) == Array(images[2..<5]))
            #expect(try txn.members(of: "photos", offset: 2, limit: 3).map(\.ordinal) == [2, 3, 4])
            let info = try #require(try txn.image(images[0]))
            #expect(info.sourceNames == ["x.jpg", "y.jpg"] && info.firstSeen == "2026-01-01T00:00:00Z")
        }
        #expect(throws: StoreError.self) { try store.write { try $0.append(images, to: "") } }
        #expect(throws: StoreError.self) { try store.write { try $0.append(images, to: "bad\u{0}name") } }
    }

    @Test func jobsKeepTheirOrderAndState() throws {
        let store = try makeStore()
        let model = tinyModel().fingerprint
        let ids = try store.write { try $0.enqueue([IngestJob(collection: "c", source: "a.png", model: model), IngestJob(collection: "c", source: "b.png", model: model)]) }
        #expect(ids == [1, 2])
        try store.write { txn in
            var job = try #require(try txn.jobs().first?.job)
            job.state = .failed
            job.attempts = 1
            job.error = "cannot decode a.png"
            try txn.updateJob(ids[0], job)
        }
        let failed = try store.read { try $0.jobs(state: .failed) }
        #expect(failed.map(\.id) == [1] && failed.first?.job.error == "cannot decode a.png")
        #expect(try store.read { try $0.jobs(state: .queued) }.map(\.job.source) == ["b.png"])
        #expect(try store.write { try $0.removeJob(1) })
        #expect(try store.write { try $0.enqueue([IngestJob(collection: "c", source: "c.png", model: model)]) } == [3])
    }

    @Test func statsCountEverything() throws {
        let model = tinyModel(dtype: .f16)
        let store = try makeStore(models: [model])
        try store.putBatch((0..<3).map { (image: SyntheticKV.imageDigest($0), kv: tinyCache($0, model: model)) }, model: model.fingerprint)
        try store.write { try $0.append([SyntheticKV.imageDigest(0)], to: "c") }
        let stats = try store.stats()
        #expect(stats.records == 3 && stats.collections == 1 && stats.collectionMembers == 1 && stats.models == 1)
        #expect(stats.rawBytes == 3 * 2 * 2 * 2 * 16 * 2)  // records * layers * K,V * tokens * channels * F16
        #expect(stats.perCodec.map(\.codec) == ["shuffle-zstd"] && stats.storedBytes > 0)
    }
}
