import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import VoCoModel
import VoCoPipeline
import VoCoServer
import VoCoStore
import VoCoStoreLMDB
import VoCoTestSupport

// MARK: - A store filled through the ingest library, and `voco serve`'s application over it

/// Sample questions and their images, ingested once per test process into a scratch store:
/// collection "samples" holds the images of the questions below in first-seen order, "four"
/// four images, "othermodel" one image whose only record is for another model fingerprint.
struct QueryFixture: Sendable {
    struct Question: Sendable {
        var question: String
        var files: [String]
    }

    let folder: String
    let store: CacheStore
    let fingerprint: Digest
    /// Sample file name → digest.
    let digests: [String: Digest]
    let questions: [Question]
    let four: [String]
    /// The image of "othermodel" and the other model's fingerprint.
    let foreignImage: Digest
    let foreignModel: Digest

    static let shared = Result { try QueryFixture() }

    init() throws {
        folder = TestPaths.scratch("query-fixture")
        let lines = try String(contentsOfFile: TestPaths.samples + "/questions.jsonl", encoding: .utf8).split(separator: "\n")
        let all = try lines.map { line -> Question in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            return Question(question: object["question"] as? String ?? "", files: object["images"] as? [String] ?? [])
        }
        // One- and several-image questions (ids 0, 2, 5, 12 to 18).
        questions = [0, 2, 5, 12, 13, 14, 15, 16, 17, 18].map { all[$0] }
        four = ["00019.png", "00023.jpg", "00003.png", "00021.png"]
        var files: [String] = []
        for name in questions.flatMap(\.files) + four where !files.contains(name) { files.append(name) }
        store = try LMDBStore.open(path: folder + "/store", options: StoreOptions(create: true))
        let ingestor = try Ingestor(store: store, model: try bundledModel.get(), options: IngestOptions(batchSize: 8, prepareThreads: 2))
        fingerprint = ingestor.fingerprint
        let sources = files.map { IngestSource(path: TestPaths.samples + "/" + $0, collection: "samples") }
            + four.map { IngestSource(path: TestPaths.samples + "/" + $0, collection: "four") }
        var digests: [String: Digest] = [:]
        _ = try ingestor.run(sources) { batch in
            for result in batch.results {
                guard let digest = result.outcome.digest else { throw TestSupportError("\(result.source.path): \(result.outcome)") }
                digests[(result.source.path as NSString).lastPathComponent] = digest
            }
        }
        self.digests = digests
        // An image known to the store whose only record is for another model.
        let foreignBytes = try sample("00039.png")
        foreignImage = Digest.sha256(foreignBytes)
        var descriptor = ingestor.descriptor
        descriptor.fingerprint = Digest.sha256(Array("another model".utf8))
        foreignModel = descriptor.fingerprint
        let kv = try requireValue(try store.get(image: requireValue(digests[four[0]], four[0]), model: fingerprint), "the record of \(four[0])")
        try store.register(descriptor)
        try store.put(kv, image: foreignImage, model: foreignModel)
        let image = foreignImage
        try store.write { w in
            try w.putImage(image, ImageInfo(byteCount: foreignBytes.count, format: "png", width: 64, height: 64, sourceNames: ["00039.png"]))
            try w.append([image], to: "othermodel")
        }
    }

    func digests(_ files: [String]) -> [Digest] { files.map { digests[$0]! } }

    /// `voco ask --image ...`'s answer: the images compressed now, then answered.
    static func freshAnswer(_ question: String, files: [String], maxTokens: Int = 32) throws -> Answer {
        let model = try bundledModel.get()
        let compressed = try model.compress(imagePaths: files.map { TestPaths.samples + "/" + $0 })
        return try model.answer(question, caches: compressed.map(\.cache), options: GenerationOptions(maxNewTokens: maxTokens))
    }
}

func requireValue<T>(_ value: T?, _ what: String = "value") throws -> T {
    guard let value else { throw TestSupportError("missing \(what)") }
    return value
}

/// Holds every question at a gate until it is opened: makes "all compute threads busy" certain
/// in a test, around the real engine.
final class GatedEngine: QueryEngine, @unchecked Sendable {
    let inner: any QueryEngine
    private let condition = NSCondition()
    private var open = false
    private(set) var arrived = 0

    init(_ inner: any QueryEngine) { self.inner = inner }

    var fingerprint: Digest { inner.fingerprint }
    var contextLength: Int { inner.contextLength }
    var cacheCounters: EngineCacheCounters { inner.cacheCounters }

    func ask(_ input: AskInput, onText: ((String) -> Void)?) throws -> AskAnswer {
        condition.withLock {
            arrived += 1
            condition.broadcast()
            while !open { condition.wait() }
        }
        return try inner.ask(input, onText: onText)
    }

    func release() { condition.withLock { open = true; condition.broadcast() } }

    /// Waits until `count` questions reached the gate, without blocking a thread of Swift's
    /// small cooperative pool (the in-process server needs those to take the questions).
    func waitForArrivals(_ count: Int, timeout: TimeInterval = 60) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while condition.withLock({ arrived }) < count {
            guard Date() < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }
}

/// `voco serve`'s application as the command builds it, on 127.0.0.1:0, over the fixture's store.
final class QueryTestServer: @unchecked Sendable {
    let fixture: QueryFixture
    let module: QueryModule
    let engine: any QueryEngine
    let application: InProcessApplication
    var router: Router<ServerContext> { application.router }
    var port: Int { application.port }

    static func start(token: String? = nil, maximumBodyBytes: Int = 64 << 10, options: QueryServerOptions = QueryServerOptions(),
                      wrap: (any QueryEngine) -> any QueryEngine = { $0 }) async throws -> QueryTestServer {
        let fixture = try QueryFixture.shared.get()
        let service = try QueryService(store: fixture.store, model: try bundledModel.get(), fingerprint: fixture.fingerprint, cacheBytes: 64 << 20)
        return try await QueryTestServer(fixture: fixture, engine: wrap(QueryServiceEngine(service)), options: options,
                                         server: ServerOptions(port: 0, token: token, maximumBodyBytes: maximumBodyBytes))
    }

    init(fixture: QueryFixture, engine: any QueryEngine, options: QueryServerOptions, server: ServerOptions) async throws {
        self.fixture = fixture
        self.engine = engine
        let metrics = ServerMetrics()
        module = try QueryModule(store: fixture.store, engine: engine, options: options, server: server, metrics: metrics,
                                 logger: InProcessApplication.quietLogger)
        application = try await InProcessApplication(server: server, modules: [module], metrics: metrics)
    }

    func client(token: String? = nil) -> TestHTTPClient { TestHTTPClient(port: port, token: token) }

    func stop() async throws {
        try await application.stop()
        let module = self.module
        let stopped = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: module.stop(timeout: 60)) }
        }
        if !stopped { throw TestSupportError("the compute threads did not stop") }
    }
}

extension TestHTTPClient {
    /// POSTs a JSON object, from a thread of its own: many questions may wait at once without
    /// taking Dispatch's few worker threads (which the server's offloaded store reads need).
    func ask(_ object: [String: Any], path: String = "/v1/ask") async throws -> HTTPResult {
        var headers = ["Content-Type": "application/json"]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        let request = Self.encode("POST", path, body: Array(try JSONSerialization.data(withJSONObject: object)), headers: headers)
        let port = self.port
        return try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try Self.exchange(request, port: port) }) }.start()
        }
    }
}

/// Server-sent events: (event, data) in order.
func serverSentEvents(_ text: String) -> [(event: String, data: String)] {
    text.components(separatedBy: "\n\n").compactMap { block in
        var event = "message", data: [String] = []
        for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
            if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
        }
        return data.isEmpty ? nil : (event, data.joined(separator: "\n"))
    }
}
