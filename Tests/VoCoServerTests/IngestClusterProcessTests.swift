import Foundation
import Testing
import VoCoStore
import VoCoStoreRedis
import VoCoTestSupport

// MARK: - Two `voco ingestd` worker processes on one queue in a store on a Redis Cluster

/// Daemons as separate processes, each with its own connections, sharing one `redis://` store's
/// job queue and one uploads folder (on this machine). Needs $VOCO_REDIS_CLUSTER (Tools/test
/// starts a cluster and sets it); without it every test here is skipped and says so.
@Suite(.serialized) struct IngestClusterProcessTests {
    static func cluster() throws -> String {
        guard let seeds = ProcessInfo.processInfo.environment["VOCO_REDIS_CLUSTER"], !seeds.isEmpty else {
            let reason = "skipped: no Redis Cluster named; set VOCO_REDIS_CLUSTER=host:port (Tools/redis-cluster.sh start; Tools/test does both)"
            print(reason)
            try Test.cancel(Comment(rawValue: reason))
        }
        return seeds
    }

    /// Generated JPEGs (distinct), as bytes.
    static func images(_ count: Int, work: String, seed: UInt64) throws -> [[UInt8]] {
        try SyntheticImages.writeJPEGs(count: count, to: work + "/images", seed: seed).map { Array(try Data(contentsOf: URL(fileURLWithPath: $0))) }
    }

    /// The `compressed` counts of a daemon's batch log lines, summed.
    static func compressedCount(_ daemon: Daemon) -> Int {
        daemon.child.errorOutput.split(separator: "\n").compactMap { line -> Int? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["message"] as? String == "batch" else { return nil }
            return Int(object["compressed"] as? String ?? "")
        }.reduce(0, +)
    }

    /// Every job of the collection, straight from the store's queue.
    static func jobs(_ store: CacheStore, _ collection: String) throws -> [IngestJob] {
        try store.jobs.jobs(collection: collection, after: nil, limit: 10_000).map(\.job)
    }

    /// Waits until every job of the collection is done or failed.
    static func waitForAll(_ store: CacheStore, _ collection: String, count: Int, timeout: TimeInterval = 120) throws -> [IngestJob] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let jobs = try jobs(store, collection)
            if jobs.count == count, jobs.allSatisfy({ $0.state == .done || $0.state == .failed }) { return jobs }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw TestSupportError("the jobs of \(collection) did not all finish in \(Int(timeout)) s: \(try jobs(store, collection).map(\.state))")
    }

    /// The collection holds each image once, every job is done and names its image, and the
    /// store verifies (`voco inspect verify` over the cluster, as a user runs it).
    static func checkComplete(_ store: CacheStore, url: String, collection: String, digests: [Digest], jobs: [IngestJob], work: String) throws {
        #expect(jobs.allSatisfy { $0.state == .done }, "\(jobs.filter { $0.state != .done }.prefix(3))")
        #expect(Set(jobs.compactMap(\.imageDigest)) == Set(digests) && jobs.count == digests.count)
        let members = try store.read { try $0.members(of: collection).map(\.image) }
        #expect(members.count == digests.count && Set(members) == Set(digests), "\(members.count) members for \(digests.count) images")
        let report = try store.verify()
        #expect(report.failures.isEmpty && report.recordsChecked == digests.count, "\(report.recordsChecked) records for \(digests.count) images: \(report.failures)")
        let verify = try ChildProcess.run(TestPaths.voco, ["inspect", "verify", "--store", url], logs: work)
        #expect(verify.status == 0, "\(verify.output) \(verify.error)")
    }

    @Test func twoWorkerProcessesCompressEveryImageExactlyOnce() async throws {
        let seeds = try Self.cluster()
        let work = TestPaths.scratch("ingestd-cluster")
        let url = "redis://\(seeds)/ingestd-\(UUID().uuidString.prefix(13))"
        let first = try Daemon.start(work: work, store: url)
        defer { first.child.stop() }
        let second = try Daemon.start(work: work, store: url)
        defer { second.child.stop() }
        // Both are up before any job exists; uploads alternate between them, so each wakes its
        // own worker, and both claim from the one queue.
        let images = try Self.images(40, work: work, seed: 91)
        for (i, image) in images.enumerated() {
            let result = try await (i % 2 == 0 ? first : second).client.post("/v1/collections/shared/images?name=\(i).jpg", body: image)
            #expect(result.status == 202, "\(result.text)")
        }
        let store = try RedisStore.open(url: url, options: StoreOptions(readOnly: true))
        defer { try? (store.backend as? RedisStore)?.destroy() }
        let jobs = try Self.waitForAll(store, "shared", count: images.count)
        #expect(try first.terminate().status == 0)
        #expect(try second.terminate().status == 0)

        let digests = images.map { Digest.sha256($0) }
        try Self.checkComplete(store, url: url, collection: "shared", digests: digests, jobs: jobs, work: work)
        // Exactly once: the two processes' batch logs count one compression per image between them.
        let (a, b) = (Self.compressedCount(first), Self.compressedCount(second))
        #expect(a + b == images.count, "compressed \(a) + \(b) for \(images.count) images")
        #expect(a > 0 && b > 0, "both workers compressed: \(a) and \(b)")
        #expect(jobs.allSatisfy { $0.attempts == 1 }, "no job was claimed twice")
        #expect(try FileManager.default.contentsOfDirectory(atPath: work + "/uploads").allSatisfy { !$0.hasSuffix(".jpg") })
    }

    @Test func aWorkerKilledMidBatchHasItsJobsReclaimedByTheOtherAfterTheLease() async throws {
        let seeds = try Self.cluster()
        let work = TestPaths.scratch("ingestd-cluster-kill")
        let url = "redis://\(seeds)/ingestd-kill-\(UUID().uuidString.prefix(13))"
        let count = 24, lease = 2.0
        // An intake without a worker fills the queue.
        let intake = try Daemon.start(work: work, store: url, extra: ["--no-worker"])
        defer { intake.child.stop() }
        let images = try Self.images(count, work: work, seed: 92)
        for (i, image) in images.enumerated() {
            let result = try await intake.client.post("/v1/collections/kill/images?name=\(i).jpg", body: image)
            #expect(result.status == 202, "\(result.text)")
        }
        let store = try RedisStore.open(url: url, options: StoreOptions(readOnly: true))
        defer { try? (store.backend as? RedisStore)?.destroy() }

        // The doomed worker claims every job as one batch; it is killed as soon as it holds them.
        let doomed = try Daemon.start(work: work, store: url, extra: ["--batch", "\(count)", "--lease", "\(lease)"])
        defer { doomed.child.stop() }
        var notYetClaimed = Date()  // the claim came after this
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let polled = Date()
            if try Self.jobs(store, "kill").contains(where: { $0.state != .queued }) { break }
            notYetClaimed = polled
            usleep(2_000)
        }
        doomed.child.send(SIGKILL)
        let killedAt = Date()
        #expect(doomed.child.wait(timeout: 10) == 128 + SIGKILL)
        let unfinished = try Self.jobs(store, "kill").filter { $0.state == .running }
        try #require(!unfinished.isEmpty, "the worker was killed mid-batch, holding jobs (it had finished them all first)")
        let doomedWorker = try #require(unfinished.first?.worker)
        #expect(unfinished.allSatisfy { $0.worker == doomedWorker && $0.attempts == 1 })

        // The other worker: nothing of the dead worker's batch until the lease ends, then all of it.
        let survivor = try Daemon.start(work: work, store: url, extra: ["--batch", "4", "--lease", "\(lease)"])
        defer { survivor.child.stop() }
        let jobs = try Self.waitForAll(store, "kill", count: count)
        // The dead worker's jobs were finished after its lease ended (it claimed after notYetClaimed).
        #expect(Date().timeIntervalSince(notYetClaimed) >= lease, "reclaimed before the lease ended")
        #expect(Date().timeIntervalSince(killedAt) < 60)
        #expect(try survivor.terminate().status == 0)
        #expect(try intake.terminate().status == 0)

        let reclaimed = jobs.filter { $0.attempts == 2 }
        #expect(reclaimed.count == unfinished.count, "\(reclaimed.count) jobs taken over, \(unfinished.count) were held by the killed worker")
        try Self.checkComplete(store, url: url, collection: "kill", digests: images.map { Digest.sha256($0) }, jobs: jobs, work: work)
        // The survivor compressed what the dead worker had not committed, each image once.
        let committedBefore = count - Self.compressedCount(survivor)
        #expect(committedBefore >= 0 && Self.compressedCount(survivor) <= unfinished.count)
        #expect(try FileManager.default.contentsOfDirectory(atPath: work + "/uploads").allSatisfy { !$0.hasSuffix(".jpg") })
    }
}
