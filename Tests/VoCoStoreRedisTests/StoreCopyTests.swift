import Foundation
import Testing
@testable import VoCoStore
import VoCoStoreLMDB
@testable import VoCoStoreRedis

/// `voco store copy` from LMDB to the cluster and back, through the real command; `voco inspect`
/// on the cluster store.
@Suite struct StoreCopyTests {
    @Test func aStoreCopiedToTheClusterAndBackIsTheSameStore() throws {
        let seeds = try requireCluster()
        let lmdbPath = FileManager.default.temporaryDirectory.appendingPathComponent("voco-copy-\(UUID().uuidString)").path
        let backPath = lmdbPath + "-back"
        defer { for path in [lmdbPath, backPath] { try? FileManager.default.removeItem(atPath: path) } }
        let url = freshURL(seeds, "copy")
        let voco = vocoExecutable()
        // Model 0: images 0..<45 in "one" (20..<25 written twice); model 1: images 30..<55 in "two".
        for (first, collection, seed) in [(0, "one", "0"), (30, "two", "1"), (20, "one", "0")] {
            let fill = try run(voco, ["debug", "store-fill", "--store", lmdbPath, "--create", "--first", "\(first)", "--records", "25", "--batch", "8",
                                      "--collection", collection, "--model-seed", seed, "--codec", "int8", "--tokens", "3"])
            #expect(fill.status == 0, "\(fill.error)")
        }
        let source = try LMDBStore.open(path: lmdbPath)
        let queued = try source.jobs.enqueue(syntheticJobs(0..<3, collection: "one", model: smallModel()))
        _ = try source.jobs.finish([JobOutcome(id: try source.jobs.claim(worker: "w", limit: 1, lease: 60)[0].id, state: .done)], worker: "w")

        let there = try run(voco, ["store", "copy", lmdbPath, url, "--batch", "7", "--json"])
        #expect(there.status == 0, "\(there.error)")
        let report = try JSONDecoder().decode(CopyReportView.self, from: Data(there.output.utf8))
        #expect(report.records == 70 && report.images == 55 && report.collections == 2 && report.members == 70 && report.models == 2)
        #expect(report.jobsQueued == 2 && report.jobsNotCopied == 1)
        let back = try run(voco, ["store", "copy", url, backPath])
        #expect(back.status == 0 && back.output.contains("verified"), "\(back.error)")

        let copy = try LMDBStore.open(path: backPath), cluster = try RedisStore.open(url: url)
        for store in [copy, cluster] {
            #expect(store.codec == source.codec)
            #expect(try snapshot(store) == snapshot(source))
            #expect(try store.verify().failures.isEmpty)
            #expect(try store.jobs.counts().queued == 2 && store.jobs.jobs(collection: "one", after: nil, limit: 10).map(\.job.source) == ["img-1", "img-2"])
        }
        _ = queued

        // voco inspect on the cluster store, and the refusals.
        let stats = try run(voco, ["inspect", "stats", "--store", url])
        #expect(stats.status == 0 && stats.output.contains("records      70") && stats.output.contains("int8"), "\(stats.output)\(stats.error)")
        let verify = try run(voco, ["inspect", "verify", "--store", url])
        #expect(verify.status == 0 && verify.output.contains("70 records"), "\(verify.output)\(verify.error)")
        let again = try run(voco, ["store", "copy", lmdbPath, url])
        #expect(again.status != 0 && again.error.contains("already holds 70 records"), "\(again.error)")
        try cluster.redis.destroy()
    }

    /// A damaged record in SRC stops the copy by name; what DST got verifies (records no
    /// collection refers to yet), and gc would drop it.
    @Test func aDamagedSourceRecordStopsTheCopyByName() throws {
        let seeds = try requireCluster()
        let model = smallModel()
        let lmdbPath = FileManager.default.temporaryDirectory.appendingPathComponent("voco-copy-bad-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: lmdbPath) }
        let source = try LMDBStore.open(path: lmdbPath, options: StoreOptions(create: true))
        try source.register(model)
        let images = (0..<20).map(SyntheticKV.imageDigest)
        try source.putBatch(images.enumerated().map { ($1, smallCache($0, model)) }, model: model.fingerprint)
        try source.write { txn in
            for image in images { try txn.putImage(image, ImageInfo(byteCount: 1, format: "png", width: 1, height: 1, sourceNames: ["x"])) }
            try txn.append(images, to: "c")
        }
        let damaged = try #require(try source.read { txn -> RecordKey? in
            var keys: [RecordKey] = []
            try txn.scanRecords { keys.append($0.key); return true }
            return keys.dropFirst(12).first
        })
        try source.write { txn in
            var bytes = try #require(try txn.readTransaction.recordBytes(damaged))
            bytes[bytes.count / 2] ^= 1
            try txn.transaction.putRecord(damaged, bytes)
        }
        let url = freshURL(seeds, "copy-bad")
        let result = try run(vocoExecutable(), ["store", "copy", lmdbPath, url, "--batch", "5"])
        #expect(result.status != 0 && result.error.contains(damaged.description), "\(result.error)")
        let partial = try RedisStore.open(url: url)
        #expect(try partial.verify().failures.isEmpty)
        #expect(try partial.read { try $0.collections() }.isEmpty)
        #expect(try partial.gc(dryRun: true).recordsRemoved == 10)
        try partial.redis.destroy()
    }
}

/// The fields of `voco store copy --json` the test reads.
struct CopyReportView: Decodable {
    var records, images, collections, members, models, jobsQueued, jobsNotCopied: Int
}

/// Everything a store holds, comparable across backends: record bytes by key, image entries,
/// models, collections in order.
struct Snapshot: Equatable {
    var records: [String: [UInt8]] = [:]
    var images: [String: ImageInfo] = [:]
    var models: [String] = []
    var collections: [String: [Digest]] = [:]
}

func snapshot(_ store: CacheStore) throws -> Snapshot {
    try store.read { txn in
        var s = Snapshot()
        try txn.readTransaction.scanRecords(model: nil) { k, v in s.records[Digest.hexString(k)] = Array(v); return true }
        try txn.readTransaction.scanCatalog(.images) { k, v in s.images[Digest.hexString(k)] = try JSONDecoder().decode(ImageInfo.self, from: Data(v)); return true }
        s.models = try txn.models().map(\.fingerprint.hex).sorted()
        for c in try txn.collections() { s.collections[c.name] = try txn.members(of: c.name).map(\.image) }
        return s
    }
}
