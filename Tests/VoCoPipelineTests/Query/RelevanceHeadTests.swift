import Foundation
import SafeTensors
import Testing
import VoCoModel
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB
import VoCoTestSupport

/// The relevance head: its file is read as Schemas/model-format.md says, bound to its model,
/// and the planner ranks by it when a rule names a target.
@Suite struct RelevanceHeadTests {
    /// A copy of the bundled model with `relevance` files of the test's own.
    static func modelCopy(_ label: String) throws -> String {
        let folder = TestPaths.scratch(label) + "/model"
        try FileManager.default.copyItem(atPath: bundledModelPath, toPath: folder)
        try? FileManager.default.removeItem(atPath: folder + "/" + RelevanceHead.fileName)
        return folder
    }

    /// A head whose target "needle" scores cache value `feature` + 0.5 (hidden = relu(x), relu(-x)).
    static func writeHead(_ directory: String, inputs: Int, feature: Int, fingerprint: String, targets: [String] = ["needle", "other"]) throws {
        var w1 = [Float](repeating: 0, count: 2 * inputs)
        w1[feature] = 1
        w1[inputs + feature] = -1
        var writer = SafeTensorsWriter(metadata: ["targets": String(decoding: try JSONEncoder().encode(targets), as: UTF8.self),
                                                  "model_fingerprint": fingerprint])
        try writer.add("hidden.weight", shape: [2, inputs], floats: w1)
        try writer.add("hidden.bias", shape: [2], floats: [0, 0])
        try writer.add("output.weight", shape: [targets.count, 2], floats: [1, -1] + [Float](repeating: 0, count: 2 * (targets.count - 1)))
        try writer.add("output.bias", shape: [targets.count], floats: [Float](repeating: 0.5, count: targets.count))
        try writer.write(to: directory + "/" + RelevanceHead.fileName)
    }

    @Test func theHeadScoresCachesAndIsBoundToItsModel() throws {
        let directory = try Self.modelCopy("head-read")
        let model = try AnsweringModel(directory: directory)
        let fingerprint = try ModelFingerprint.compute(directory: directory).fingerprint
        let caches = try model.compress(imagePaths: ["00003.png", "00024.png"].map { TestPaths.samples + "/" + $0 }).map(\.cache)
        let inputs = caches[0].keys.count + caches[0].values.count
        // The last layer's last key channel: it differs between images (layer 0's does not).
        let feature = caches[0].keys.count - 1
        try Self.writeHead(directory, inputs: inputs, feature: feature, fingerprint: fingerprint.hex)
        let head = try #require(try RelevanceHead.load(directory: directory, fingerprint: fingerprint))
        #expect(head.targets == ["needle", "other"])
        let scores = try #require(try head.scores("Needle", caches: caches))
        for (cache, score) in zip(caches, scores) { #expect(abs(score - (cache.keys[feature] + 0.5)) <= 1e-5) }
        #expect(try head.scores("absent", caches: caches) == nil)
        // Another model's head, or a cache of another size: refused by name.
        #expect(throws: RelevanceError.self) { try RelevanceHead.load(directory: directory, fingerprint: Digest.sha256(Data("x".utf8))) }
        let small = try VoCoCache(mode: .voco, layers: 1, rows: 1, width: 2, firstPosition: 0, keys: [1, 2], values: [3, 4])
        #expect(throws: RelevanceError.self) { try head.scores("needle", caches: [small]) }
        // A file that is not a head.
        try Data("not safetensors".utf8).write(to: URL(fileURLWithPath: directory + "/" + RelevanceHead.fileName))
        #expect(throws: (any Error).self) { try RelevanceHead.load(directory: directory, fingerprint: fingerprint) }
    }

    @Test func thePlannerRanksByTheHeadWhenARuleNamesATarget() throws {
        let directory = try Self.modelCopy("head-plan")
        let model = try AnsweringModel(directory: directory)
        let fingerprint = try ModelFingerprint.compute(directory: directory).fingerprint
        let store = try LMDBStore.open(path: TestPaths.scratch("head-plan-store"), options: StoreOptions(create: true))
        let names = ["00000.jpg", "00001.jpg", "00002.png", "00003.png", "00004.jpg", "00005.png"]
        _ = try Ingestor(store: store, model: model).run(names.map { IngestSource(path: TestPaths.samples + "/" + $0, collection: "six") }) { _ in }
        // The caches as stored (F16), in collection order.
        let members = try store.read { try $0.members(of: "six") }
        let caches = try members.map { try model.engineCache(try #require(try store.get(image: $0.image, model: fingerprint))) }
        let feature = caches[0].keys.count - 1
        try Self.writeHead(directory, inputs: caches[0].keys.count + caches[0].values.count, feature: feature, fingerprint: fingerprint.hex)
        try Data(#"{"format": 1, "yes_token": "▁yes", "no_token": "▁no", "rules": [{"pattern": "find the ([a-z]+)", "probes": ["Is there a $1?"], "target": "$1", "place": 2}]}"#.utf8)
            .write(to: URL(fileURLWithPath: directory + "/" + RelevanceRules.fileName))
        let service = try QueryService(store: store, model: model, fingerprint: fingerprint)
        let answer = try service.ask(QueryRequest(collection: "six", question: "Find the needle"))
        #expect(answer.ranked && answer.plan == "head: needle" && answer.candidates == 6 && answer.used.count == 2)
        // The two caches with the largest value there, best first (the same stored values).
        let best = caches.indices.sorted { caches[$0].keys[feature] > caches[$1].keys[feature] }.prefix(2)
        #expect(answer.used.map(\.ordinal) == best.map { members[$0].ordinal })
        #expect(zip(answer.used, best).allSatisfy { abs(Float($0.relevance ?? .nan) - (caches[$1].keys[feature] + 0.5)) <= 1e-5 })
        // A target the head lacks: the probe ranks instead.
        let probed = try service.ask(QueryRequest(collection: "six", question: "Find the circle"))
        #expect(probed.plan == "probes: Is there a circle?" && probed.used.count == 2)
    }

    @Test func aHeadMadeForAnotherModelIsSetAsideWithAWarning() throws {
        let directory = try Self.modelCopy("head-other")
        let model = try AnsweringModel(directory: directory)
        let fingerprint = try ModelFingerprint.compute(directory: directory).fingerprint
        try Self.writeHead(directory, inputs: 512, feature: 0, fingerprint: Digest.sha256(Data("other".utf8)).hex)
        let store = try LMDBStore.open(path: TestPaths.scratch("head-other-store"), options: StoreOptions(create: true))
        let service = try QueryService(store: store, model: model, fingerprint: fingerprint)
        #expect(service.head == nil)
        #expect(service.warnings.count == 1 && service.warnings[0].contains("trained for model"), "\(service.warnings)")
    }
}
