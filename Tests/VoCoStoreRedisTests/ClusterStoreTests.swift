import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreRedis

/// What the Redis backend promises beyond the shared contract (StoreContractTests runs that).
@Suite struct ClusterStoreTests {
    @Test func aMissingStoreIsCreatedOnlyWhenAsked() throws {
        let seeds = try requireCluster()
        let url = freshURL(seeds, "missing")
        for options in [StoreOptions(), StoreOptions(readOnly: true), StoreOptions(readOnly: true, create: true)] {
            #expect { _ = try RedisStore.open(url: url, options: options) } throws: { error in
                guard case let .noStore(path) = error as? StoreError else { return false }
                return path == url
            }
        }
        #expect { _ = try RedisStore.open(url: "redis://127.0.0.1:1/x") } throws: { error in
            guard case let .backend(path, operation, _) = error as? StoreError else { return false }
            return path == "redis://127.0.0.1:1/x" && operation.contains("connecting")
        }
    }

    @Test func storesOnOneClusterAreApart() throws {
        let seeds = try requireCluster()
        let model = smallModel()
        let a = try makeRedisStore(seeds, "apart", models: [model]), b = try makeRedisStore(seeds, "apart", models: [model])
        try a.putBatch([(SyntheticKV.imageDigest(1), smallCache(1, model))], model: model.fingerprint)
        try a.write { try $0.append([SyntheticKV.imageDigest(1)], to: "same name") }
        try b.write { try $0.append([SyntheticKV.imageDigest(2), SyntheticKV.imageDigest(3)], to: "same name") }
        #expect(try a.read { try $0.collections() } == [CollectionSummary(name: "same name", count: 1)])
        #expect(try b.read { try $0.collections() } == [CollectionSummary(name: "same name", count: 2)])
        #expect(try a.stats().records == 1 && b.stats().records == 0)
        try a.redis.destroy()
        #expect(throws: StoreError.self) { _ = try reopen(a) }
        #expect(try b.read { try $0.members(of: "same name").count } == 2)
        try b.redis.destroy()
    }

    @Test func codecAndSchemaVersionAreChecked() throws {
        let seeds = try requireCluster()
        let store = try makeRedisStore(seeds, "codec", codec: CodecSettings(codec: .q4))
        let url = store.redis.url.description
        #expect(try RedisStore.open(url: url).codec == store.codec)
        #expect { _ = try RedisStore.open(url: url, options: StoreOptions(codec: .default)) } throws: { error in
            if case .codecMismatch = error as? StoreError { return true } else { return false }
        }
        _ = try store.redis.client.run("test", key: store.redis.client.keys.meta, RedisCommand("HSET", store.redis.client.keys.meta, "schema_version", "9"))
        #expect { _ = try RedisStore.open(url: url) } throws: { error in
            error as? StoreError == .schemaMismatch(path: url, found: "9", expected: RedisStore.schemaVersion)
        }
        try store.redis.destroy()
    }

    @Test func aReadOnlyStoreRefusesWrites() throws {
        let seeds = try requireCluster()
        let model = smallModel()
        let store = try makeRedisStore(seeds, "ro", models: [model])
        try store.put(smallCache(4, model), image: SyntheticKV.imageDigest(4), model: model.fingerprint)
        let reader = try reopen(store, readOnly: true)
        #expect(try reader.get(image: SyntheticKV.imageDigest(4), model: model.fingerprint) != nil)
        #expect(throws: StoreError.readOnly(path: store.location)) { try reader.delete(image: SyntheticKV.imageDigest(4), model: model.fingerprint) }
        #expect(throws: StoreError.readOnly(path: store.location)) { try reader.jobs.enqueue(syntheticJobs(0..<1, collection: "c", model: model)) }
        #expect(throws: StoreError.readOnly(path: store.location)) { _ = try reader.jobs.claim(worker: "w", limit: 1, lease: 1) }
    }

    /// Puts wait for the next other call; a body that throws loses only those still waiting.
    @Test func aWriteThatThrowsKeepsWhatWentOutAndDropsWhatWaited() throws {
        let seeds = try requireCluster()
        let model = smallModel()
        let store = try makeRedisStore(seeds, "throw", models: [model])
        let (a, b) = (SyntheticKV.imageDigest(10), SyntheticKV.imageDigest(11))
        let (ra, rb) = (try store.encode(smallCache(10, model), image: a, model: model), try store.encode(smallCache(11, model), image: b, model: model))
        struct Abort: Error {}
        #expect(throws: Abort.self) {
            try store.write { txn in
                try txn.put(ra)
                try txn.append([a], to: "c")  // sends the record first, then appends
                try txn.putImage(b, ImageInfo(byteCount: 1, format: "png", width: 1, height: 1, sourceNames: ["b.png"]))
                try txn.put(rb)
                throw Abort()
            }
        }
        #expect(try store.get(image: a, model: model.fingerprint) != nil)
        #expect(try store.read { try $0.members(of: "c").map(\.image) } == [a])
        #expect(try store.get(image: b, model: model.fingerprint) == nil)
        #expect(try store.read { try $0.image(b) } == nil)
    }

    /// `voco debug store-fill` (image entries, records, then the batch's membership per write)
    /// killed with SIGKILL at random moments: the store always verifies (a member always has its
    /// record and image entry), and gc can run.
    @Test func aWriterKilledAtAnyMomentLeavesAStoreThatVerifies() throws {
        let seeds = try requireCluster()
        let url = freshURL(seeds, "killed")
        for round in 0..<3 {
            let writer = try Spawned(vocoExecutable(), ["debug", "store-fill", "--store", url, "--create", "--first", "\(round * 100_000)",
                                                        "--records", "100000", "--batch", "7", "--layers", "4", "--head-dim", "32"])
            Thread.sleep(forTimeInterval: Double.random(in: 0.5...1.5))
            kill(writer.pid, SIGKILL)
            let result = writer.wait()
            #expect(result.status == 128 + SIGKILL, "the writer ended before it was killed: \(result.error)")
        }
        let store = try RedisStore.open(url: url)
        let report = try store.verify()
        #expect(report.failures.isEmpty, "\(report.failures.prefix(5))")
        let members = try store.read { try $0.members(of: "synthetic") }
        #expect(members.count > 0 && report.recordsChecked >= members.count, "the writer wrote nothing before it was killed")
        #expect(Set(members.map(\.image)).count == members.count)
        let dry = try store.gc(dryRun: true)
        #expect(dry.recordsRemoved == report.recordsChecked - members.count)
        try store.redis.destroy()
    }

    @Test func aUserAndPasswordAreSentAndAWrongOneIsRefusedByName() throws {
        let seeds = try requireCluster()
        let router = try ClusterRouter(url: RedisStoreURL("redis://\(seeds)"))
        let user = "voco-test-\(UUID().uuidString.prefix(8))", password = "pw-\(UUID().uuidString)"
        for node in router.nodes { #expect(try router.direct(RedisCommand("ACL", "SETUSER", user, "on", ">\(password)", "~*", "&*", "+@all"), to: node) == .status("OK")) }
        defer { for node in router.nodes { _ = try? router.direct(RedisCommand("ACL", "DELUSER", user), to: node) } }

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("voco-pw-\(UUID().uuidString)").path
        try "\(password)\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let name = "auth-\(UUID().uuidString.prefix(8))"
        let store = try RedisStore.open(url: "redis://\(user):\(password)@\(seeds)/\(name)", options: StoreOptions(create: true))
        #expect(!store.location.contains(password))
        #expect(try RedisStore.open(url: "redis://\(seeds)/\(name)?user=\(user)&password-file=\(file)").codec == store.codec)
        #expect { _ = try RedisStore.open(url: "redis://\(user):wrong-\(password)@\(seeds)/\(name)") } throws: { error in
            "\(error)".contains("refused the credentials") && !"\(error)".contains(password)
        }
        try store.redis.destroy()
    }

    @Test func persistenceSettingsAreJudgedByName() {
        let node = RedisEndpoint(host: "10.0.0.1", port: 7000)
        let good = ["appendonly": "yes", "appendfsync": "always", "maxmemory": "0", "maxmemory-policy": "noeviction"]
        #expect(PersistenceCheck.judge(good, node: node) == ([], []))
        var config = good
        config["appendonly"] = "no"
        #expect(PersistenceCheck.judge(config, node: node).refuse.first?.contains("10.0.0.1:7000 runs with appendonly no") == true)
        config = good
        config["appendfsync"] = "everysec"
        #expect(PersistenceCheck.judge(config, node: node) == ([], [PersistenceCheck.judge(config, node: node).warn[0]]))
        #expect(PersistenceCheck.judge(config, node: node).warn[0].contains("appendfsync everysec"))
        config = good
        config["maxmemory-policy"] = "allkeys-lru"
        #expect(PersistenceCheck.judge(config, node: node).warn.count == 1)
        config["maxmemory"] = "1000000"
        #expect(PersistenceCheck.judge(config, node: node).refuse[0].contains("maxmemory-policy allkeys-lru"))
    }

    @Test func verifyFindsAQueueThatDisagreesWithItself() throws {
        let seeds = try requireCluster()
        let store = try makeRedisStore(seeds, "queue")
        let ids = try store.jobs.enqueue(syntheticJobs(0..<3, collection: "c", model: smallModel()))
        _ = try store.jobs.claim(worker: "w", limit: 1, lease: 60)
        #expect(try store.verify().failures.isEmpty)
        let keys = store.redis.client.keys
        _ = try store.redis.client.run("test", key: keys.jobCounts, RedisCommand("HINCRBY", keys.jobCounts, "done", 1))
        _ = try store.redis.client.run("test", key: keys.jobStream, RedisCommand("XACK", keys.jobStream, RedisKeys.consumerGroup, ids[0].rawValue))
        let failures = try store.verify().failures.map(\.reason)
        #expect(failures.contains { $0.contains("the counts say 2/1/1/0") }, "\(failures)")
        #expect(failures.contains { $0.contains("not pending in the group under its worker w") }, "\(failures)")
        try store.redis.destroy()
    }
}
