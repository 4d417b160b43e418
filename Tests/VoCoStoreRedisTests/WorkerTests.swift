import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreRedis

/// Ingest workers sharing one queue on the cluster. Each worker is a thread with a store of its
/// own (its own connections, as a process on another host has); the worker loop is
/// `TestIngestWorker`, written small here until `voco ingest` workers exist.
@Suite struct WorkerTests {
    @Test func twoWorkersShareOneQueueAndCompressEveryImageOnce() throws {
        let seeds = try requireCluster()
        let model = smallModel()
        let store = try makeRedisStore(seeds, "shared", models: [model])
        try store.jobs.enqueue(syntheticJobs(0..<60, collection: "shared", model: model))
        let log = Collector<(worker: String, source: String)>(), failures = Collector<String>()
        // Both connected before either starts; 5 ms of "compute" per image keeps both busy.
        let clients = try ["w1", "w2"].map { (name: $0, store: try reopen(store)) }
        let workers = clients.map { client in
            Worker {
                do {
                    try TestIngestWorker(store: client.store, name: client.name, model: model, make: syntheticMake(model, delay: 0.005), log: log).run()
                } catch { failures.add("\(client.name): \(error)") }
            }
        }
        workers.forEach { $0.join() }
        #expect(failures.all.isEmpty, "\(failures.all)")

        let compressed = log.all.map(\.source)
        #expect(compressed.count == 60 && Set(compressed) == Set((0..<60).map { "img-\($0)" }), "each image compressed exactly once")
        #expect(Set(log.all.map(\.worker)) == ["w1", "w2"], "both workers took jobs")
        let members = try store.read { try $0.members(of: "shared") }
        #expect(Set(members.map(\.image)) == Set((0..<60).map(SyntheticKV.imageDigest)) && members.count == 60)
        #expect(members.map(\.ordinal) == (0..<60).map(UInt64.init))
        var counts = JobCounts()
        counts.done = 60
        #expect(try store.jobs.counts() == counts)
        let report = try store.verify()
        #expect(report.failures.isEmpty && report.recordsChecked == 60, "\(report.failures)")
        try store.redis.destroy()
    }

    /// A worker that claims a batch and dies (its store and connections dropped, nothing finished
    /// or released): another worker gets nothing of that batch while the lease holds, and all of
    /// it once the lease ends; every image ends up stored once.
    @Test func aWorkerKilledMidBatchHasItsJobsReclaimedAfterTheLease() throws {
        let seeds = try requireCluster()
        let model = smallModel()
        let store = try makeRedisStore(seeds, "reclaim", models: [model])
        let ids = try store.jobs.enqueue(syntheticJobs(0..<10, collection: "c", model: model))
        let lease: TimeInterval = 1.5
        var doomedJobs: [JobID] = []
        do {
            let doomed = try reopen(store)
            let claimed = try doomed.jobs.claim(worker: "doomed", limit: 4, lease: lease)
            doomedJobs = claimed.map(\.id)
            #expect(doomedJobs == Array(ids[0..<4]))
            // It finishes one job of its batch, then dies mid-batch.
            try TestIngestWorker(store: doomed, name: "doomed", model: model, make: syntheticMake(model)).process([claimed[0]])
        }
        let started = Date()
        let survivor = TestIngestWorker(store: try reopen(store), name: "survivor", model: model, lease: 30, batch: 10, make: syntheticMake(model))
        let first = try survivor.store.jobs.claim(worker: "survivor", limit: 10, lease: 30)
        #expect(first.map(\.id) == Array(ids[4..<10]))  // not the dead worker's, while its lease holds
        try survivor.process(first)
        #expect(try store.jobs.counts().running == 3)
        while Date().timeIntervalSince(started) < lease + 0.2 { Thread.sleep(forTimeInterval: 0.1) }
        let reclaimed = try survivor.store.jobs.claim(worker: "survivor", limit: 10, lease: 30)
        #expect(reclaimed.map(\.id) == Array(doomedJobs[1...]))
        #expect(reclaimed.allSatisfy { $0.job.attempts == 2 && $0.job.worker == "survivor" })
        try survivor.process(reclaimed)

        #expect(try store.jobs.counts().done == 10 && store.jobs.counts().pending == 0)
        let members = try store.read { try $0.members(of: "c").map(\.image) }
        #expect(members.count == 10 && Set(members) == Set((0..<10).map(SyntheticKV.imageDigest)))
        #expect(try store.verify().failures.isEmpty)
        try store.redis.destroy()
    }
}
