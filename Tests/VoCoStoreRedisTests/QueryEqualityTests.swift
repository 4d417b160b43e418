import Foundation
import Testing
import VoCoModel
import VoCoPipeline
@testable import VoCoStore
import VoCoStoreLMDB
@testable import VoCoStoreRedis

/// The bundled model's caches of sample images, compressed by two workers into the cluster and by
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
        // A worker's "make": the real compression pass, with its own model instance.
        func compressor() throws -> (IngestJob) throws -> (image: Digest, info: ImageInfo, kv: KVTensors) {
            let model = try AnsweringModel(directory: directory)
            return { job in
                let image = try #require(try model.compress(imagePaths: [job.source]).first)
                return (Digest(bytes: image.digest)!, ImageInfo(byteCount: 0, format: image.format.rawValue, width: image.width, height: image.height,
                                                                sourceNames: [job.source]), try model.storeTensors(image.cache))
            }
        }

        let cluster = try makeRedisStore(seeds, "query", models: [descriptor])
        try cluster.jobs.enqueue(jobs)
        let log = Collector<(worker: String, source: String)>(), failures = Collector<String>()
        let workers = try ["w1", "w2"].map { name in
            let (client, make) = (try reopen(cluster), try compressor())
            return Worker {
                do { try TestIngestWorker(store: client, name: name, model: descriptor, batch: 2, make: make, log: log).run() } catch { failures.add("\(error)") }
            }
        }
        workers.forEach { $0.join() }
        #expect(failures.all.isEmpty, "\(failures.all)")
        #expect(log.all.map(\.source).sorted() == jobs.map(\.source).sorted(), "each image compressed once")

        let lmdbPath = FileManager.default.temporaryDirectory.appendingPathComponent("voco-query-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: lmdbPath) }
        let lmdb = try LMDBStore.open(path: lmdbPath, options: StoreOptions(create: true))
        try lmdb.register(descriptor)
        try lmdb.jobs.enqueue(jobs)
        try TestIngestWorker(store: lmdb, name: "solo", model: descriptor, make: try compressor()).run()

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
        for question in questions {
            let answers = try [cluster, lmdb].map { store in
                let caches = try question.images.map { file in
                    try model.engineCache(try #require(try store.get(image: byFile[file]!, model: descriptor.fingerprint)))
                }
                return try model.answer(question.question, caches: caches)
            }
            #expect(answers[0].tokens == answers[1].tokens && !answers[0].tokens.isEmpty, "\(question.question): \(answers[0].text) vs \(answers[1].text)")
        }
        try cluster.redis.destroy()
    }
}
