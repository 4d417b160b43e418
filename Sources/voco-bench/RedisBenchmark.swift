import ArgumentParser
import Foundation
import VoCoStore
import VoCoStoreLMDB
import VoCoStoreRedis

/// Records/s written and read on a Redis Cluster store, with one client and with several, next
/// to an LMDB store in the same run and to redis-benchmark's raw SET/GET of values of the same
/// size on the same cluster (the floor a client can approach).
struct RedisBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis",
        abstract: "Store records/s on a Redis Cluster vs LMDB vs redis-benchmark's raw SET/GET (same value size, same cluster)."
    )

    @Option(help: "The cluster: host:port[,host:port...] (default: $VOCO_REDIS_CLUSTER; Tools/redis-cluster.sh start makes one).")
    var cluster: String?
    @Option(help: "Records per run for the small record (the large one gets a tenth).") var records = 4000
    @Option(help: "Records per write.") var batch = 32
    @Option(help: "Concurrent clients in the second run of each measure.") var clients = 8
    @Option(help: "Runs per measure; the best rate is printed.") var repeats = 3
    @Flag(help: "Measure ingest images/s instead: `voco ingestd` worker processes draining one queue (LMDB with 1 worker, the cluster with 1 and 2).")
    var ingest = false
    @Option(help: "--ingest: a folder of images (e.g. Tools/bench/shapes_images.py's); the first --count files of the sorted walk are ingested.")
    var images: String?
    @Option(help: "--ingest: images per run.") var count = 400
    @Option(help: "--ingest: jobs a worker claims per batch (voco ingestd --batch).") var ingestBatch = 16
    @Option(help: "--ingest: the voco executable (default: the one next to voco-bench).") var voco: String?
    @Option(help: "--ingest: the model directory (default: the bundled model).") var model: String?

    struct Shape {
        let name: String
        let layers, kvHeads, headDim: Int
        let share: Int
    }

    static let shapes = [
        Shape(name: "tiny, k=1 (4 layers, 2x32)", layers: 4, kvHeads: 2, headDim: 32, share: 1),
        Shape(name: "7B, k=1 (32 layers, 32x128)", layers: 32, kvHeads: 32, headDim: 128, share: 10),
    ]

    func run() throws {
        guard let seeds = cluster ?? ProcessInfo.processInfo.environment["VOCO_REDIS_CLUSTER"], !seeds.isEmpty else {
            throw ValidationError("name a cluster with --cluster host:port or VOCO_REDIS_CLUSTER (Tools/redis-cluster.sh start makes one)")
        }
        guard records > 0, batch > 0, clients > 0, repeats > 0 else { throw ValidationError("--records, --batch, --clients and --repeats must be > 0") }
        if ingest { return try IngestWorkersBenchmark(seeds: seeds, options: self).run() }
        print("voco-bench redis: cluster \(seeds), \(batch) records per write, 1 and \(clients) clients, best of \(repeats) runs")
        print("store writes: one write body per batch (Redis: pipelined per node, then WAIT for 1 replica); reads: one get per record (checksum and model checked, decoded to Float32), and raw record bytes")
        print("redis-benchmark: the same value size on the same cluster, -P 1 (one request per round trip, as the store's reads) and -P \(batch) (as its writes); it does not WAIT")
        for shape in Self.shapes {
            let count = max(records / shape.share, clients)
            let model = SyntheticKV.model(layers: shape.layers, kvHeads: shape.kvHeads, headDim: shape.headDim, tokensPerImage: 1, dtype: .f16, seed: 1)
            let settings = CodecSettings.default
            let records = try (0..<count).map { n in
                let kv = SyntheticKV.make(layers: shape.layers, tokens: 1, kvHeads: shape.kvHeads, headDim: shape.headDim, seed: UInt64(n % 64), modelSeed: 1)
                let image = SyntheticKV.imageDigest(n)
                return EncodedRecord(key: RecordKey(model: model.fingerprint, image: image, codec: settings.codec),
                                     bytes: try RecordCoder.encode(kv, model: model.fingerprint, image: image, dtype: .f16, settings: settings))
            }
            let size = records.reduce(0) { $0 + $1.bytes.count } / count
            print("\n\(shape.name): \(count) records of \(size) bytes (shuffle-zstd)")
            var rows = [["store", "clients", "write rec/s", "read rec/s (verified)", "read rec/s (bytes)"]]
            for clientCount in [1, clients] {
                let lmdb = try best { try measureLMDB(model: model, records: records, clients: clientCount) }
                rows.append(["LMDB (one process)", "\(clientCount)"] + lmdb.map { String(format: "%.0f", $0) })
                let redis = try best { try measureRedis(seeds: seeds, model: model, records: records, clients: clientCount) }
                rows.append(["Redis Cluster store", "\(clientCount)"] + redis.map { String(format: "%.0f", $0) })
                for pipeline in [1, batch] {
                    let raw = try redisBenchmark(seeds: seeds, size: size, requests: count, clients: clientCount, pipeline: pipeline)
                    rows.append(["redis-benchmark SET/GET -P \(pipeline)", "\(clientCount)", String(format: "%.0f", raw.set), "-", String(format: "%.0f", raw.get)])
                }
            }
            printTable(rows)
        }
    }

    /// The best of each column over `repeats` runs.
    private func best(_ measure: () throws -> [Double]) throws -> [Double] {
        var out = try measure()
        for _ in 1..<repeats { out = zip(out, try measure()).map { max($0, $1) } }
        return out
    }

    private func scratch() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("voco-bench-redis-\(UUID().uuidString)").path
    }

    private func measureLMDB(model: ModelDescriptor, records: [EncodedRecord], clients: Int) throws -> [Double] {
        let path = scratch()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try LMDBStore.open(path: path, options: StoreOptions(create: true))
        try store.register(model)
        // One environment per process (LMDB's rule): the clients are threads sharing it.
        return try rates(stores: Array(repeating: store, count: clients), model: model, records: records)
    }

    private func measureRedis(seeds: String, model: ModelDescriptor, records: [EncodedRecord], clients: Int) throws -> [Double] {
        let url = "redis://\(seeds)/bench-\(UUID().uuidString.prefix(13))"
        let first = try RedisStore.open(url: url, options: StoreOptions(create: true))
        defer { try? (first.backend as? RedisStore)?.destroy() }
        try first.register(model)
        // Each client its own store object: its own connections, as a process on another host.
        let stores = try [first] + (1..<clients).map { _ in try RedisStore.open(url: url) }
        return try rates(stores: stores, model: model, records: records)
    }

    /// Writes, verified reads, raw reads: records/s with the records split among the clients.
    private func rates(stores: [CacheStore], model: ModelDescriptor, records: [EncodedRecord]) throws -> [Double] {
        let clients = stores.count
        let parts = (0..<clients).map { c in Array(records[(c * records.count / clients)..<((c + 1) * records.count / clients)]) }
        func timed(_ body: @escaping (Int) throws -> Void) throws -> Double {
            let failures = NSLock()
            var failure: Error?
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: clients) { c in
                do { try body(c) } catch { failures.withLock { failure = error } }
            }
            if let failure { throw failure }
            return Double(records.count) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let write = try timed { c in
            for start in stride(from: 0, to: parts[c].count, by: batch) {
                let chunk = parts[c][start..<min(parts[c].count, start + batch)]
                try stores[c].write { txn in for record in chunk { try txn.put(record) } }
            }
        }
        let verified = try timed { c in
            for record in parts[c] {
                guard try stores[c].get(image: record.key.image, model: model.fingerprint) != nil else { throw ValidationError("record missing") }
            }
        }
        let raw = try timed { c in
            try stores[c].read { txn in
                for record in parts[c] where try txn.readTransaction.recordBytes(record.key)?.count != record.bytes.count {
                    throw ValidationError("record \(record.key) differs")
                }
            }
        }
        return [write, verified, raw]
    }

    /// redis-benchmark: SET and GET of `size`-byte values (one key per node, so every GET finds
    /// its value), `pipeline` requests per round trip, at least 200 MB or 20,000 requests so
    /// that its start-up does not weigh on the rate. One client: one connection to the master of its
    /// key (its cluster mode splits clients over one thread per master and stops when a thread
    /// has none); more: --cluster with that many.
    private func redisBenchmark(seeds: String, size: Int, requests: Int, clients: Int, pipeline: Int) throws -> (set: Double, get: Double) {
        let router = try ClusterRouter(url: RedisStoreURL("redis://\(seeds)"))
        var target = router.masters[0]
        var mode = ["--cluster", "-c", "\(clients)"]
        if clients == 1, let owner = router.owner(of: HashSlot.of("key:__rand_int__")) { (target, mode) = (owner, ["-c", "1"]) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-benchmark", "-h", target.host, "-p", "\(target.port)"] + mode + [
            "-t", "set,get", "-d", "\(size)", "-n", "\(max(requests, min(20_000, 200_000_000 / max(size, 1))))", "-P", "\(pipeline)", "--csv"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var rates: [String: Double] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            if fields.count >= 2, let rate = Double(fields[1]) { rates[fields[0]] = rate }
        }
        guard let set = rates["SET"], let get = rates["GET"] else { throw ValidationError("redis-benchmark (exit \(process.terminationStatus), \(process.terminationReason == .uncaughtSignal ? "signal" : "exit")) printed no SET/GET rates: \(output)") }
        return (set, get)
    }
}
