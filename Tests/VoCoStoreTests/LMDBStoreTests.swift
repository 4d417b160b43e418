import CLMDB
import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreLMDB

/// What only the LMDB backend does: opening and refusing directories, the map's growth and
/// limit, the schema upgrade, and the structure checks of its own databases.
@Suite struct LMDBStoreTests {
    // MARK: - Opening

    @Test func schemaVersionMismatchIsRefusedWithItsError() throws {
        let path: String
        do {
            let store = try makeStore()
            path = store.path
            try store.lmdb.setMeta("schema_version", "4")
        }
        #expect { _ = try LMDBStore.open(path: path) } throws: { error in
            guard case let .schemaMismatch(p, found, expected) = error as? StoreError else { return false }
            return p == path && found == "4" && expected == LMDBStore.schemaVersion && "\(error)".contains("ingest into a new store")
        }
    }

    @Test func openingWhatIsNotAStoreSaysSo() throws {
        let missing = temporaryDirectory("missing")
        #expect(throws: StoreError.noStore(path: missing)) { _ = try LMDBStore.open(path: missing, options: StoreOptions(readOnly: true)) }
        #expect(throws: StoreError.noStore(path: missing)) { _ = try LMDBStore.open(path: missing) }
        let path: String
        do { path = try makeStore(codec: CodecSettings(codec: .int8)).path }
        #expect(throws: StoreError.self) { _ = try LMDBStore.open(path: path, options: StoreOptions(codec: .default)) }
        #expect(try LMDBStore.open(path: path, options: StoreOptions(readOnly: true)).codec.codec == .int8)

        // Another program's LMDB environment is left alone.
        let foreign = temporaryDirectory("foreign")
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        do {
            let environment = try LMDBEnvironment(path: foreign, readOnly: false, newMapSize: 1 << 20, mapSizeLimit: 1 << 20, maxDatabases: 2)
            _ = try environment.openDatabases(["theirs"], create: true)
        }
        #expect { _ = try LMDBStore.open(path: foreign) } throws: { error in
            if case .notAStore = error as? StoreError { return "\(error)".contains(foreign) } else { return false }
        }
        #expect(throws: StoreError.self) { _ = try LMDBStore.open(path: foreign, options: StoreOptions(readOnly: true)) }
    }

    @Test func readOnlyStoresRefuseWrites() throws {
        let path: String
        do { path = try makeStore().path }
        let store = try LMDBStore.open(path: path, options: StoreOptions(readOnly: true))
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

        // 2. A batch that cannot fit under the map limit fails with mapFull and keeps nothing.
        #expect { try store.putBatch((10..<30).map { (SyntheticKV.imageDigest($0), cache($0)) }, model: model.fingerprint) } throws: { error in
            if case .mapFull = error as? StoreError { return "\(error)".contains(store.path) } else { return false }
        }
        #expect(try store.get(image: SyntheticKV.imageDigest(10), model: model.fingerprint) == nil)

        for n in 0..<2 { #expect(try store.get(image: SyntheticKV.imageDigest(n), model: model.fingerprint) == cache(n)) }
        #expect(try store.lmdb.checkStructure().isEmpty)
        // The store still takes writes that fit.
        try store.put(cache(40), image: SyntheticKV.imageDigest(40), model: model.fingerprint)
    }

    // MARK: - Schema 1 -> 2

    @Test func aVersion1StoreIsUpgradedWhenOpenedForWriting() throws {
        let path = temporaryDirectory("v1")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let images = (0..<3).map { SyntheticKV.imageDigest($0) }
        let model = tinyModel().fingerprint
        do {  // a store as version 1 wrote it: six databases, no indexes
            let environment = try LMDBEnvironment(path: path, readOnly: false, newMapSize: 1 << 20, mapSizeLimit: 1 << 20, maxDatabases: 6)
            let d = try environment.openDatabases(["records", "images", "collections", "models", "jobs", "meta"], create: true)
            try environment.write { txn in
                try txn.put(d["meta"]!, Array("schema_version".utf8), Array("1".utf8))
                try txn.put(d["meta"]!, Array("codec".utf8), Array(try JSONEncoder.sortedKeys.encode(CodecSettings.default)))
                for (n, image) in images.enumerated() { try txn.put(d["collections"]!, CollectionKeys.member("c", UInt64(n)), image.bytes) }
                for (n, state) in [IngestJob.State.done, .running, .queued].enumerated() {
                    let job = IngestJob(collection: "c", source: "\(n).png", model: model, state: state)
                    try txn.put(d["jobs"]!, bigEndianBytes(UInt64(n + 1)), Array(try JSONEncoder.sortedKeys.encode(job)))
                }
            }
        }
        #expect { _ = try LMDBStore.open(path: path, options: StoreOptions(readOnly: true)) } throws: { error in
            if case .schemaMismatch(_, "1", LMDBStore.schemaVersion) = error as? StoreError { return true } else { return false }
        }
        let store = try LMDBStore.open(path: path)
        #expect(try store.read { try $0.ordinal(of: images[2], in: "c") } == 2)
        #expect(try store.write { try $0.append([images[1], SyntheticKV.imageDigest(9)], to: "c") } == [1, 3])
        var counts = JobCounts()
        (counts.queued, counts.done) = (2, 1)  // the crashed `running` job is queued again
        #expect(try store.jobs.counts() == counts)
        #expect(try store.jobs.claim(worker: "w", limit: 5, lease: 60).map(\.job.source) == ["1.png", "2.png"])
        #expect(try store.lmdb.checkStructure().isEmpty)
        #expect(try LMDBStore.open(path: path, options: StoreOptions(readOnly: true)).read { try $0.members(of: "c").count } == 4)
    }

    // MARK: - Structure

    @Test func aDamagedMembersIndexIsReported() throws {
        let store = try makeStore()
        let images = (0..<4).map { SyntheticKV.imageDigest($0) }
        try store.write { try $0.append(images, to: "c") }
        #expect(try store.lmdb.checkStructure().isEmpty)
        let lmdb = store.lmdb
        try lmdb.environment!.write { txn in
            _ = try txn.delete(lmdb.databases.members, CollectionKeys.index("c", images[1]))
            try txn.put(lmdb.databases.members, CollectionKeys.index("c", images[2]), bigEndianBytes(7))
            try txn.put(lmdb.databases.jobQueue, bigEndianBytes(42), [])
        }
        let failures = try store.verify().failures
        #expect(failures.contains { $0.database == "members" && $0.reason.contains("without its index entry") })
        #expect(failures.contains { $0.database == "members" && $0.reason.contains("another ordinal") })
        #expect(failures.contains { $0.database == "job_queue" })
    }
}
