import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreRedis

/// On a cluster of its own (Tools/redis-cluster.sh on free ports), since it kills a node and
/// changes settings: SIGKILL of the master that holds the job queue while two ingest workers, a
/// writer and a reader run; its replica takes over; all of them go on; nothing acknowledged is lost.
@Suite(.serialized) struct FailoverTests {
    @Test func aKilledMasterIsReplacedAndNothingAcknowledgedIsLost() throws {
        _ = try requireCluster()  // where a cluster is named, redis-server is there to start another
        let t0 = Date()
        let cluster = try PrivateCluster()
        print("failover: cluster started in \(Date().timeIntervalSince(t0)) s")
        defer { cluster.stop() }
        let model = smallModel()
        let url = freshURL(cluster.seeds, "failover")
        let store = try RedisStore.open(url: url, options: StoreOptions(create: true))
        try store.register(model)
        let jobCount = 200
        try store.jobs.enqueue(syntheticJobs(0..<jobCount, collection: "ingested", model: model))

        let stop = Collector<Bool>(), failures = Collector<String>(), acknowledged = Collector<Digest>(), reads = Collector<Int>()
        let takenOver = Collector<JobID>()
        // Two workers (20 ms of "compute" per image, 4 s leases), each with its own client.
        let workers = try ["w1", "w2"].map { name in
            let client = try reopen(store)
            return Worker {
                do {
                    try TestIngestWorker(store: client, name: name, model: model, lease: 4, batch: 4, make: syntheticMake(model, delay: 0.02),
                                         strict: false, takenOver: takenOver).run()
                } catch { failures.add("\(name): \(error)") }
            }
        }
        // A writer that puts one image per write (entry, record, membership) and notes what was acknowledged.
        let writerStore = try reopen(store)
        let writer = Worker {
            var n = 1_000_000
            while stop.all.isEmpty {
                n += 1
                let image = SyntheticKV.imageDigest(n)
                do {
                    let record = try writerStore.encode(smallCache(n, model), image: image, model: model)
                    try writerStore.write { txn in
                        try txn.putImage(image, ImageInfo(byteCount: n, format: "synthetic", width: 1, height: 1, sourceNames: ["direct-\(n)"]))
                        try txn.put(record)
                        try txn.append([image], to: "direct")
                    }
                    acknowledged.add(image)
                } catch { failures.add("writer: \(error)"); return }
            }
        }
        // A reader of what was acknowledged.
        let readerStore = try reopen(store, readOnly: true)
        let reader = Worker {
            while stop.all.isEmpty {
                guard let image = acknowledged.all.randomElement() else { Thread.sleep(forTimeInterval: 0.01); continue }
                do {
                    guard try readerStore.get(image: image, model: model.fingerprint) != nil else { failures.add("reader: \(image.hex) is gone"); return }
                    reads.add(1)
                } catch { failures.add("reader: \(error)"); return }
            }
        }

        Thread.sleep(forTimeInterval: 1.0)
        let router = store.redis.client.router
        let queueSlot = HashSlot.of(store.redis.client.keys.jobStream)
        let victim = try #require(router.owner(of: queueSlot))
        // Its replicas, as the master itself lists them (ROLE: master, offset, [[ip, port, offset]...]).
        let role = try #require(try router.direct(RedisCommand("ROLE"), to: victim).elements)
        let heir = (role.count == 3 ? role[2].elements ?? [] : []).compactMap { r -> RedisEndpoint? in
            guard let parts = r.elements, parts.count >= 2, let host = parts[0].text, let port = parts[1].integer else { return nil }
            return RedisEndpoint(host: host, port: Int(port))
        }
        #expect(heir.count == 1)
        let info = try #require(try router.direct(RedisCommand("INFO", "server"), to: victim).text)
        let pid = try #require(info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }.flatMap { Int32($0.dropFirst(11)) })
        let (acknowledgedBefore, doneBefore) = (acknowledged.all.count, try store.jobs.counts().done)
        #expect(doneBefore < jobCount, "the workers finished before the kill; give them more work")
        #expect(kill(pid, SIGKILL) == 0)

        workers.forEach { $0.join() }
        print("failover: workers done \(Date().timeIntervalSince(t0)) s, \(acknowledged.all.count) writes")
        // The writer goes on until it has 20 more acknowledged writes after the workers are done.
        let target = acknowledged.all.count + 20
        let deadline = Date().addingTimeInterval(60)
        while acknowledged.all.count < target, failures.all.isEmpty, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        stop.add(true)
        print("failover: writer done \(Date().timeIntervalSince(t0)) s, \(acknowledged.all.count) writes")
        writer.join()
        reader.join()
        #expect(failures.all.isEmpty, "\(failures.all)")

        // Its replica serves the slot now.
        try router.refresh(olderThan: .distantFuture)
        let owner = router.owner(of: queueSlot)
        #expect(owner != victim && heir.contains { $0 == owner }, "slot \(queueSlot): \(String(describing: owner)), was \(victim), replicas \(heir)")

        // Nothing acknowledged is lost, as a new client sees it.
        let check = try RedisStore.open(url: url, options: StoreOptions(readOnly: true))
        let written = acknowledged.all
        #expect(written.count > acknowledgedBefore + 20)
        #expect(try check.read { try $0.members(of: "direct").map(\.image) } == written)
        for image in written { #expect(try check.get(image: image, model: model.fingerprint) != nil, "\(image.hex)") }
        var counts = JobCounts()
        counts.done = jobCount
        #expect(try check.jobs.counts() == counts)
        let ingested = try check.read { try $0.members(of: "ingested").map(\.image) }
        #expect(ingested.count == jobCount && Set(ingested) == Set((0..<jobCount).map(SyntheticKV.imageDigest)))
        let report = try check.verify()
        #expect(report.failures.isEmpty, "\(report.failures.prefix(5))")
        #expect(reads.all.count > 0)
        print("failover: \(written.count) writes acknowledged (\(written.count - acknowledgedBefore) after the kill), \(reads.all.count) reads, "
              + "\(takenOver.all.count) jobs taken over after a lost reply; the writer's client: \(writerStore.redis.client.router.redirects)")

        try checkSettingsAreRefusedOrWarnedByName(cluster: cluster, router: router, url: url)
    }

    /// The persistence check at connect, on the live nodes of the same cluster.
    private func checkSettingsAreRefusedOrWarnedByName(cluster: PrivateCluster, router: ClusterRouter, url: String) throws {
        let node = try #require(router.nodes.first)
        _ = try router.direct(RedisCommand("CONFIG", "SET", "appendonly", "no"), to: node)
        #expect { _ = try RedisStore.open(url: url) } throws: { "\($0)".contains("\(node) runs with appendonly no") && "\($0)".contains("durability=relaxed") }
        let relaxed = try RedisStore(url: RedisStoreURL(url + "?durability=relaxed"))
        #expect(relaxed.warnings.contains { $0.contains("\(node) runs with appendonly no") })
        #expect(try RedisStore(url: RedisStoreURL(url), options: StoreOptions(readOnly: true)).warnings.contains { $0.contains("appendonly no") })
        _ = try router.direct(RedisCommand("CONFIG", "SET", "appendonly", "yes"), to: node)
        _ = try router.direct(RedisCommand("CONFIG", "SET", "appendfsync", "everysec"), to: node)
        let warned = try RedisStore(url: RedisStoreURL(url))
        #expect(warned.warnings.count == 1 && warned.warnings[0].contains("\(node) runs with appendfsync everysec"), "\(warned.warnings)")
    }
}
