import Foundation
import Testing
import VoCoModel
import VoCoPipeline
@testable import VoCoStore
import VoCoStoreLMDB
@testable import VoCoStoreRedis

/// The bundled model's caches of sample images, written by two workers into the cluster and by
/// one into LMDB: the stored records are the same bytes, and questions answered from either
/// store get the same tokens.
@Suite struct QueryEqualityTests {
    struct Question: Decodable {
        var images: [String]
        var question: String
    }

    @Test func answersFromTheClusterEqualAnswersFromLMDBTokenForToken() throws {
        let seeds = try requireCluster()
        let directory = repositoryRoot + "/Models/voco-shapes"
        let fingerprint = try ModelFingerprint.compute(directory: directory)
        let descriptor = try AnsweringModel(directory: directory).descriptor(fingerprint: fingerprint)
        let questions = try String(contentsOfFile: repositoryRoot + "/Samples/questions.jsonl", encoding: .utf8)
            .split(separator: "\n").prefix(8).map { try JSONDecoder().decode(Question.self, from: Data($0.utf8)) }
        let files = Array(Set(questions.flatMap(\.images))).sorted()
        let jobs = files.map { IngestJob(collection: "samples", source: repositoryRoot + "/Samples/" + $0, model: descriptor.fingerprint) }
        // The compression pass once per image, up front: the engine's threads may sum in another
        // order from run to run, and this test is about what the stores keep and serve. The
        // workers' "make" hands out these caches.
        let compressor = try AnsweringModel(directory: directory)
        var made: [String: (image: Digest, info: ImageInfo, kv: KVTensors)] = [:]
        for job in jobs {
            let image = try #require(try compressor.compress(imagePaths: [job.source]).first)
            made[job.source] = (Digest(bytes: image.digest)!, ImageInfo(byteCount: 0, format: image.format.rawValue, width: image.width,
                                                                        height: image.height, sourceNames: [job.source]),
                                try compressor.storeTensors(image.cache))
        }
        let frozen = made
        let make: (IngestJob) throws -> (image: Digest, info: ImageInfo, kv: KVTensors) = { job in try #require(frozen[job.source]) }

        let cluster = try makeRedisStore(seeds, "query", models: [descriptor])
        try cluster.jobs.enqueue(jobs)
        let log = Collector<(worker: String, source: String)>(), failures = Collector<String>()
        let workers = try ["w1", "w2"].map { name in
            let client = try reopen(cluster)
            return Worker {
                do { try TestIngestWorker(store: client, name: name, model: descriptor, batch: 2, make: make, log: log).run() } catch { failures.add("\(error)") }
            }
        }
        workers.forEach { $0.join() }
        #expect(failures.all.isEmpty, "\(failures.all)")
        #expect(log.all.map(\.source).sorted() == jobs.map(\.source).sorted(), "each job done once")

        let lmdbPath = FileManager.default.temporaryDirectory.appendingPathComponent("voco-query-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: lmdbPath) }
        let lmdb = try LMDBStore.open(path: lmdbPath, options: StoreOptions(create: true))
        try lmdb.register(descriptor)
        try lmdb.jobs.enqueue(jobs)
        try TestIngestWorker(store: lmdb, name: "solo", model: descriptor, make: make).run()

        // The same records, byte for byte.
        let digests = try lmdb.read { try $0.members(of: "samples").map(\.image) }
        #expect(Set(digests) == Set(try cluster.read { try $0.members(of: "samples").map(\.image) }) && digests.count == files.count)
        for digest in digests {
            let key = RecordKey(model: descriptor.fingerprint, image: digest, codec: .shuffleZstd)
            #expect(try lmdb.read { try $0.readTransaction.recordBytes(key) } == cluster.read { try $0.readTransaction.recordBytes(key) })
        }
        // The same answers, token for token.
        let model = try AnsweringModel(directory: directory)
        let byFile = try Dictionary(uniqueKeysWithValues: files.map { file in
            (file, Digest.sha256(try Data(contentsOf: URL(fileURLWithPath: repositoryRoot + "/Samples/" + file))))
        })
        // Through the query service (its snapshot read, LRU and planner) on either backend.
        let services = try [cluster, lmdb].map { try QueryService(store: $0, model: model, fingerprint: descriptor.fingerprint) }
        for question in questions {
            let answers = try services.map { service in
                try service.ask(QueryRequest(images: question.images.map { byFile[$0]! }, question: question.question))
            }
            #expect(answers[0].tokens == answers[1].tokens && !answers[0].tokens.isEmpty, "\(question.question): \(answers[0].answer) vs \(answers[1].answer)")
            #expect(answers[0].used == answers[1].used)
        }
        // A whole collection, ranked by the relevance probe on both: the same images chosen with
        // the same scores (the members' order differs: two workers appended them on the cluster).
        let ranked = try services.map { try $0.ask(QueryRequest(collection: "samples", question: "Which image has a blue circle?")) }
        #expect(ranked.allSatisfy(\.ranked) && ranked[0].plan == ranked[1].plan)
        #expect(ranked[0].used.map(\.digest) == ranked[1].used.map(\.digest))
        // Batched kernels may sum a row in another order when the batch holds other rows.
        #expect(zip(ranked[0].used, ranked[1].used).allSatisfy { abs(($0.relevance ?? .nan) - ($1.relevance ?? .nan)) <= 1e-4 })
        #expect(ranked[0].tokens == ranked[1].tokens, "\(ranked[0].answer) vs \(ranked[1].answer)")
        try cluster.redis.destroy()
    }
}
