import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreLMDB
import VoCoStoreRedis

// MARK: - Backends the contract runs on

/// A way to make an empty store of one backend. The contract suite below runs unchanged on
/// every backend listed in `contractBackends`.
struct StoreBackendFactory: CustomTestStringConvertible, Sendable {
    let name: String
    /// Whether a `write` body that throws keeps nothing (LMDB); cluster backends run the calls
    /// of a body one by one.
    let atomicWrites: Bool
    let make: @Sendable (_ codec: CodecSettings, _ models: [ModelDescriptor]) throws -> CacheStore

    var testDescription: String { name }

    static let lmdb = StoreBackendFactory(name: "LMDB", atomicWrites: true) { codec, models in
        try makeStore(codec: codec, models: models)
    }

    /// A new store (its own name, so its keys are apart) on the cluster $VOCO_REDIS_CLUSTER names.
    static let redis = StoreBackendFactory(name: "Redis Cluster", atomicWrites: false) { codec, models in
        let store = try RedisStore.open(url: "redis://\(redisCluster ?? "")/contract-\(UUID().uuidString.prefix(13))",
                                        options: StoreOptions(create: true, codec: codec))
        for model in models { try store.register(model) }
        return store
    }
}

/// `host:port[,host:port...]` of a Redis Cluster to run the contract on (Tools/test starts one).
let redisCluster = ProcessInfo.processInfo.environment["VOCO_REDIS_CLUSTER"].flatMap { $0.isEmpty ? nil : $0 }

let contractBackends: [StoreBackendFactory] = [.lmdb] + (redisCluster == nil ? [] : [.redis])

@Test func theContractRunsOnARedisClusterWhenOneIsNamed() throws {
    guard redisCluster != nil else {
        let reason = "no Redis Cluster named: the store contract ran on LMDB only; set VOCO_REDIS_CLUSTER=host:port (Tools/redis-cluster.sh start) to run it on a cluster too"
        print(reason)
        try Test.cancel(Comment(rawValue: reason))
    }
}

@Suite struct StoreContractTests {
    // MARK: - Refusing bad records

    @Test(arguments: contractBackends)
    func oneCorruptedByteAnywhereIsRefused(_ backend: StoreBackendFactory) throws {
        let model = tinyModel()
        let store = try backend.make(.default, [model])
        let image = SyntheticKV.imageDigest(1)
        try store.put(tinyCache(1, model: model), image: image, model: model.fingerprint)
        let key = RecordKey(model: model.fingerprint, image: image, codec: .shuffleZstd)
        let good = try #require(try store.read { try $0.readTransaction.recordBytes(key) })
        try store.write { txn in
            var variants = (0..<good.count).map { i -> [UInt8] in
                var bad = good
                bad[i] ^= 0x10
                return bad
            }
            variants += [Array(good.dropLast()), good + [0], []]  // truncated, one byte too many, empty
            for bad in variants {
                try txn.transaction.putRecord(key, bad)
                #expect {
                    _ = try txn.record(image: image, model: model.fingerprint)
                } throws: { error in
                    guard case let .corruptRecord(_, keyText, named, _) = error as? StoreError else { return false }
                    return keyText == key.description && named == image && "\(error)".contains(image.hex)
                }
            }
            try txn.transaction.putRecord(key, good)
        }
        #expect(try store.get(image: image, model: model.fingerprint) != nil)
    }

    @Test(arguments: contractBackends)
    func aRecordIsNeverServedToAnotherModel(_ backend: StoreBackendFactory) throws {
        let a = tinyModel(seed: 1), b = tinyModel(seed: 2), c = tinyModel(seed: 3, layers: 3)
        let store = try backend.make(.default, [a, b, c])
        let image = SyntheticKV.imageDigest(2)
        try store.put(tinyCache(2, model: a), image: image, model: a.fingerprint)
        #expect(try store.get(image: image, model: b.fingerprint) == nil)  // no record for b

        // A's record copied under B's key: the header names A, so B's read refuses it.
        let bytesA = try #require(try store.read { try $0.readTransaction.recordBytes(RecordKey(model: a.fingerprint, image: image, codec: .shuffleZstd)) })
        try store.write { try $0.transaction.putRecord(RecordKey(model: b.fingerprint, image: image, codec: .shuffleZstd), bytesA) }
        #expect { _ = try store.get(image: image, model: b.fingerprint) } throws: { "\($0)".contains("names model \(a.fingerprint.hex)") }

        // A record that names C but has A's shapes (2 layers, C has 3) is refused too.
        let forged = try RecordCoder.encode(tinyCache(2, model: a), model: c.fingerprint, image: image, dtype: .f16, settings: .default)
        try store.write { try $0.transaction.putRecord(RecordKey(model: c.fingerprint, image: image, codec: .shuffleZstd), forged) }
        #expect { _ = try store.get(image: image, model: c.fingerprint) } throws: { "\($0)".contains("differs from model") }

        // And putting a cache of the wrong shape for a model is refused before it is stored.
        #expect(throws: StoreError.self) { try store.put(tinyCache(3, model: a), image: image, model: c.fingerprint) }
        let recordFailures = try store.verify().failures.filter { $0.database == "records" && $0.model != nil }
        #expect(recordFailures.map(\.model) == [b.fingerprint.hex, c.fingerprint.hex].sorted())
    }

    @Test(arguments: contractBackends)
    func recordsNeedARegisteredModel(_ backend: StoreBackendFactory) throws {
        let store = try backend.make(.default, [])
        let model = tinyModel()
        #expect { try store.put(tinyCache(1, model: model), image: SyntheticKV.imageDigest(1), model: model.fingerprint) } throws: { error in
            if case .modelNotRegistered = error as? StoreError { return true } else { return false }
        }
        try store.register(model)
        try store.register(model)  // again, the same: allowed
        // The same fingerprint with other shapes is refused.
        var other = model
        other.layers = 5
        #expect(throws: StoreError.self) { try store.register(other) }
        var huge = tinyModel(seed: 9)
        huge.layers = Int.max
        #expect(throws: StoreError.self) { try store.register(huge) }
    }

    @Test(arguments: contractBackends.filter(\.atomicWrites))
    func aWriteThatThrowsKeepsNothing(_ backend: StoreBackendFactory) throws {
        let model = tinyModel()
        let store = try backend.make(.default, [model])
        try store.put(tinyCache(0, model: model), image: SyntheticKV.imageDigest(0), model: model.fingerprint)
        struct Abort: Error {}
        #expect(throws: Abort.self) {
            try store.write { txn in
                try txn.deleteRecord(image: SyntheticKV.imageDigest(0), model: model.fingerprint)
                try txn.append([SyntheticKV.imageDigest(0)], to: "never")
                throw Abort()
            }
        }
        #expect(try store.get(image: SyntheticKV.imageDigest(0), model: model.fingerprint) != nil)
        #expect(try store.read { try $0.collections() }.isEmpty)
    }

    // MARK: - Collections, images, gc

    @Test(arguments: contractBackends)
    func removeAndGCDropOnlyWhatNoCollectionRefersTo(_ backend: StoreBackendFactory) throws {
        let model = tinyModel()
        let store = try backend.make(.default, [model])
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
        #expect(try store.read { try $0.ordinal(of: images[4], in: "a") } == 3)
        #expect(try store.read { try $0.ordinal(of: images[4], in: "b") } == nil)
        #expect(try store.write { try $0.removeCollection("a") } == 4)
        #expect(try store.read { try $0.members(of: "b").map(\.image) } == [images[3], images[2]])
        #expect(try store.read { try $0.ordinal(of: images[0], in: "a") } == nil)

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
        // A collection re-made after removal starts again at ordinal 0.
        #expect(try store.write { try $0.append([images[2]], to: "a") } == [0])
    }

    @Test(arguments: contractBackends)
    func collectionsPageInOrderAndImagesMergeSourceNames(_ backend: StoreBackendFactory) throws {
        let store = try backend.make(.default, [])
        let images = (0..<7).map { SyntheticKV.imageDigest($0) }
        try store.write { txn in
            try txn.append(images, to: "photos")
            try txn.append([images[0]], to: "a b/c")
            try txn.append([images[1]], to: "photos2")
            try txn.putImage(images[0], ImageInfo(byteCount: 10, format: "jpeg", width: 2, height: 2, sourceNames: ["x.jpg"], firstSeen: "2026-01-01T00:00:00Z"))
            try txn.putImage(images[0], ImageInfo(byteCount: 10, format: "jpeg", width: 2, height: 2, sourceNames: ["y.jpg", "x.jpg"]))
        }
        try store.read { txn in
            #expect(try txn.collections() == [CollectionSummary(name: "a b/c", count: 1), CollectionSummary(name: "photos", count: 7),
                                              CollectionSummary(name: "photos2", count: 1)])
            #expect(try txn.collection(named: "photos") == CollectionSummary(name: "photos", count: 7))
            #expect(try txn.collection(named: "photo") == nil)
            #expect(try txn.members(of: "photos", offset: 2, limit: 3).map(\.image) == Array(images[2..<5]))
            #expect(try txn.members(of: "photos", offset: 2, limit: 3).map(\.ordinal) == [2, 3, 4])
            #expect(try txn.members(of: "photos", offset: Int.max, limit: Int.max).isEmpty)
            #expect(try txn.members(of: "photos", offset: 6, limit: 0).isEmpty)
            let info = try #require(try txn.image(images[0]))
            #expect(info.sourceNames == ["x.jpg", "y.jpg"] && info.firstSeen == "2026-01-01T00:00:00Z")
        }
        // A read after the entry changed sees the change (decoded entries are kept by their
        // exact text, never by digest alone).
        try store.write { try $0.putImage(images[0], ImageInfo(byteCount: 10, format: "jpeg", width: 2, height: 2, sourceNames: ["z.jpg"])) }
        #expect(try store.read { try $0.image(images[0])?.sourceNames } == ["x.jpg", "y.jpg", "z.jpg"])
        #expect(try store.read { try $0.image(images[0])?.sourceNames } == ["x.jpg", "y.jpg", "z.jpg"])
        #expect(throws: StoreError.self) { try store.write { try $0.append(images, to: "") } }
        #expect(throws: StoreError.self) { try store.write { try $0.append(images, to: "bad\u{0}name") } }
        #expect(throws: StoreError.self) { try store.read { try $0.members(of: "photos", offset: -1) } }
    }

    @Test(arguments: contractBackends)
    func writersAppendingToOneCollectionNeverDuplicate(_ backend: StoreBackendFactory) throws {
        let store = try backend.make(.default, [])
        let images = (0..<40).map { SyntheticKV.imageDigest($0) }
        let failures = FailureLog()
        DispatchQueue.concurrentPerform(iterations: 4) { writer in
            do {
                // Every writer adds all images, in batches of 5, starting at a different place.
                for batch in 0..<8 {
                    let start = ((batch + 2 * writer) % 8) * 5
                    try store.write { try $0.append(Array(images[start..<(start + 5)]), to: "shared") }
                }
            } catch { failures.add("writer \(writer): \(error)") }
        }
        #expect(failures.messages.isEmpty, "\(failures.messages)")
        let members = try store.read { try $0.members(of: "shared") }
        #expect(Set(members.map(\.image)) == Set(images) && members.count == images.count)
        #expect(members.map(\.ordinal) == (0..<40).map(UInt64.init))
    }

    // MARK: - Verify sees structure, not only records

    @Test(arguments: contractBackends)
    func verifyFindsMembersWithoutRecordsAndRecordsWithoutImages(_ backend: StoreBackendFactory) throws {
        let model = tinyModel()
        let store = try backend.make(.default, [model])
        let (a, b, c) = (SyntheticKV.imageDigest(0), SyntheticKV.imageDigest(1), SyntheticKV.imageDigest(2))
        let info = ImageInfo(byteCount: 1, format: "png", width: 1, height: 1, sourceNames: ["x.png"])
        try store.putBatch([(a, tinyCache(0, model: model)), (b, tinyCache(1, model: model))], model: model.fingerprint)
        try store.write { txn in
            try txn.putImage(a, info)
            try txn.putImage(c, info)
            try txn.append([a, c], to: "k")  // c has no record
        }
        let failures = try store.verify().failures
        #expect(failures.contains { $0.database == "collections" && $0.image == c.hex && $0.reason.contains("no record") })
        #expect(failures.contains { $0.database == "records" && $0.image == b.hex && $0.reason.contains("images entry") })
        #expect(failures.count == 2, "\(failures)")
        #expect { _ = try store.gc() } throws: { error in
            if case .damaged = error as? StoreError { return "\(error)".contains("verify") } else { return false }
        }
    }

    // MARK: - The job queue

    @Test(arguments: contractBackends)
    func jobsAreClaimedOnceFinishedAndCounted(_ backend: StoreBackendFactory) throws {
        let store = try backend.make(.default, [])
        let model = tinyModel().fingerprint
        let q = store.jobs
        let ids = try q.enqueue((0..<5).map { IngestJob(collection: $0 < 3 ? "c" : "d", source: "\($0).png", model: model) })
        #expect(ids.count == 5 && ids == ids.sorted())
        #expect(try q.counts().queued == 5)

        let first = try q.claim(worker: "w1", limit: 2, lease: 60)
        #expect(first.map(\.job.source) == ["0.png", "1.png"])
        #expect(first.allSatisfy { $0.job.state == .running && $0.job.worker == "w1" && $0.job.attempts == 1 })
        let second = try q.claim(worker: "w2", limit: 10, lease: 60)
        #expect(second.map(\.job.source) == ["2.png", "3.png", "4.png"])
        #expect(try q.claim(worker: "w3", limit: 10, lease: 60).isEmpty)
        #expect(try q.counts().running == 5)

        // Only the holder finishes a job.
        let digest = SyntheticKV.imageDigest(0)
        #expect(try q.finish([JobOutcome(id: first[0].id, state: .done, imageDigest: digest)], worker: "w2") == [first[0].id])
        #expect(try q.finish([JobOutcome(id: first[0].id, state: .done, imageDigest: digest),
                              JobOutcome(id: first[1].id, state: .failed, error: "cannot decode 1.png")], worker: "w1").isEmpty)
        #expect(try q.job(first[0].id)?.state == .done && q.job(first[0].id)?.imageDigest == digest)
        #expect(try q.job(first[1].id)?.error == "cannot decode 1.png")
        // A worker shutting down gives its jobs back; they are claimed again, first.
        try q.release([second[0].id, second[1].id], worker: "w2")
        let again = try q.claim(worker: "w3", limit: 1, lease: 60)
        #expect(again.map(\.id) == [second[0].id] && again.first?.job.attempts == 2)
        var counts = JobCounts()
        (counts.queued, counts.running, counts.done, counts.failed) = (1, 2, 1, 1)
        #expect(try q.counts() == counts)

        // Paging a collection's jobs.
        let c = try q.jobs(collection: "c", after: nil, limit: 2)
        #expect(c.map(\.job.source) == ["0.png", "1.png"])
        #expect(try q.jobs(collection: "c", after: c.last?.id, limit: 10).map(\.job.source) == ["2.png"])
        #expect(try q.jobs(collection: nil, after: nil, limit: 100).count == 5)
        #expect(try q.jobs(collection: "none", after: nil, limit: 100).isEmpty)
        #expect(try q.job(JobID("no-such-id")) == nil)
    }

    @Test(arguments: contractBackends)
    func aDeadWorkersJobsAreReclaimedAfterTheLease(_ backend: StoreBackendFactory) throws {
        let store = try backend.make(.default, [])
        let q = store.jobs
        let ids = try q.enqueue([IngestJob(collection: "c", source: "a.png", model: tinyModel().fingerprint)])
        #expect(try q.claim(worker: "dead", limit: 1, lease: 0.2).map(\.id) == ids)
        #expect(try q.claim(worker: "live", limit: 1, lease: 60).isEmpty)  // the lease still holds
        // Renewing keeps it; then the worker dies and its lease runs out.
        #expect(try q.renew(ids, worker: "dead", lease: 0.2).isEmpty)
        Thread.sleep(forTimeInterval: 0.5)
        let taken = try q.claim(worker: "live", limit: 1, lease: 60)
        #expect(taken.map(\.id) == ids && taken.first?.job.attempts == 2 && taken.first?.job.worker == "live")
        // The dead worker, back, holds nothing any more.
        #expect(try q.renew(ids, worker: "dead", lease: 60) == ids)
        #expect(try q.finish([JobOutcome(id: ids[0], state: .done)], worker: "dead") == ids)
        #expect(try q.finish([JobOutcome(id: ids[0], state: .done)], worker: "live").isEmpty)
        #expect(try q.counts().done == 1 && q.counts().pending == 0)
    }

    // MARK: - Model references

    @Test(arguments: contractBackends)
    func aModelReferenceIsPutOnceAndRelativeRecordsReadBack(_ backend: StoreBackendFactory) throws {
        let model = tinyModel()
        let store = try backend.make(try CodecSettings(parsing: "hq:ref=2"), [model])
        let key = RecordKey(model: model.fingerprint, image: SyntheticKV.imageDigest(90), codec: .hq)
        #expect(try store.write { try $0.transaction.putRecordIfAbsent(key, [1, 2, 3]) })
        #expect(try store.write { try !$0.transaction.putRecordIfAbsent(key, [4, 5]) })
        #expect(try store.read { try $0.readTransaction.recordBytes(key) } == [1, 2, 3])
        try store.write { _ = try $0.deleteRecord(key) }

        let images = (0..<5).map { SyntheticKV.imageDigest($0) }
        for (n, image) in images.enumerated() {
            try store.put(tinyCache(n, model: model), image: image, model: model.fingerprint)
        }
        let reference = try #require(try store.reference(model: model.fingerprint))
        try store.read { txn in
            for (n, image) in images.enumerated() {
                let (header, kv, _) = try #require(try txn.record(RecordKey(model: model.fingerprint, image: image, codec: .hq)))
                #expect(header.isRelative == (header.referenceTag == reference.tag))
                #expect(kv.shape == tinyCache(n, model: model).shape)
            }
        }
        #expect(try store.stats().records == 5)
    }

    // MARK: - Stats

    @Test(arguments: contractBackends)
    func statsCountEverything(_ backend: StoreBackendFactory) throws {
        let model = tinyModel(dtype: .f16)
        let store = try backend.make(.default, [model])
        try store.putBatch((0..<3).map { (image: SyntheticKV.imageDigest($0), kv: tinyCache($0, model: model)) }, model: model.fingerprint)
        try store.write { try $0.append([SyntheticKV.imageDigest(0)], to: "c") }
        try store.jobs.enqueue([IngestJob(collection: "c", source: "a.png", model: model.fingerprint)])
        let stats = try store.stats()
        #expect(stats.records == 3 && stats.collections == 1 && stats.collectionMembers == 1 && stats.models == 1 && stats.jobs == 1)
        #expect(stats.rawBytes == 3 * 2 * 2 * 2 * 16 * 2)  // records * layers * K,V * tokens * channels * F16
        #expect(stats.perCodec.map(\.codec) == ["shuffle-zstd"] && stats.storedBytes > 0)
    }
}
