import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import VoCoCommands
import VoCoModel
import VoCoPipeline
import VoCoServer
import VoCoStore
import VoCoStoreLMDB
#if canImport(Glibc)
import Glibc
#endif

/// `voco serve`'s throughput and latency over loopback at 1, 8 and 32 concurrent clients, next
/// to the same questions asked of the query library directly (no HTTP) in the same run; RSS.
struct ServeBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "voco serve over loopback: requests/s and latency p50/p99 at 1, 8 and 32 clients, against QueryService alone; RSS.",
        discussion: """
            Fills a scratch store with the Samples/ images (the ingest library, the bundled model), \
            starts the query server in this process on 127.0.0.1:0, and lets C client threads ask \
            the sample questions over their images (one connection per request) until --requests \
            are answered or --seconds pass. The baseline asks QueryService the same questions \
            directly, one at a time. The decoded-cache LRU is warm for both.
            """
    )

    @Option(help: "Model directory (default: the bundled Models/voco-shapes).")
    var model: String?

    @Option(help: "The folder of sample images and questions.jsonl (default: Samples/ beside the bundled model's Models/).")
    var samples: String?

    @Option(help: "Concurrent clients, comma separated.")
    var clients = "1,8,32"

    @Option(help: "Requests per concurrency level at most.")
    var requests = 200

    @Option(help: "Seconds per concurrency level at most.")
    var seconds = 30

    @Option(help: "The server's compute threads.")
    var computeThreads = 1

    @Option(help: "The server's waiting places (past computing + waiting: 503).")
    var maxWaiting = 64

    @Option(help: "Answer tokens per question.")
    var maxTokens = 8

    func validate() throws {
        try OptionCheck.require("requests", requests, in: 1...1_000_000)
        try OptionCheck.require("seconds", seconds, in: 1...86_400)
        try OptionCheck.require("compute-threads", computeThreads, in: 1...256)
        try OptionCheck.require("max-waiting", maxWaiting, in: 0...100_000)
        try OptionCheck.require("max-tokens", maxTokens, in: 1...256)
        let levels = clients.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !levels.isEmpty, levels.allSatisfy({ $0 != nil && (1...1024).contains($0!) }) else {
            throw ValidationError("--clients \(clients): must be numbers from 1 to 1024, comma separated")
        }
    }

    struct Question {
        var body: [UInt8]
        var request: QueryRequest
    }

    func run() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("voco-bench-serve-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let directory = model ?? DefaultModel.path()
        let answering = try AnsweringModel(directory: directory)
        let store = try LMDBStore.open(path: scratch + "/store", options: StoreOptions(create: true))
        let samples = self.samples ?? (((DefaultModel.path() as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent + "/Samples")
        let (questions, images) = try Self.fill(store: store, model: answering, samples: samples, maxTokens: maxTokens)
        let service = try QueryService(store: store, model: answering)
        print("model: \(directory); \(images) sample images in a scratch store; \(questions.count) questions (1 to 4 images each), \(maxTokens) answer tokens at most")
        print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; server: \(computeThreads) compute thread(s), \(maxWaiting) waiting places")

        // Warm the LRU, then the baseline: the library alone, one question at a time.
        for question in questions { _ = try service.ask(question.request) }
        var direct: [Double] = []
        let directStart = DispatchTime.now().uptimeNanoseconds
        for i in 0..<min(requests, questions.count * 4) {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try service.ask(questions[i % questions.count].request)
            direct.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        let directSeconds = Double(DispatchTime.now().uptimeNanoseconds - directStart) / 1e9

        var logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
        logger.logLevel = .critical
        let options = ServerOptions(port: 0)
        let metrics = ServerMetrics()
        let module = try QueryModule(store: store, engine: QueryServiceEngine(service),
                                     options: QueryServerOptions(computeThreads: computeThreads, maximumWaiting: maxWaiting),
                                     server: options, metrics: metrics, logger: logger)
        let port = PortBox()
        let application = ServerFoundation.buildApplication(options: options, modules: [module], metrics: metrics, logger: logger) { port.set($0) }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [application], logger: logger))
        let running = Task { try await group.run() }
        let listening = port.wait()

        var rows: [[String]] = [["clients", "requests", "answered", "503", "req/s", "p50 ms", "p99 ms", "RSS MiB"]]
        rows.append(["direct (no HTTP)", "\(direct.count)", "\(direct.count)", "0", formatted(Double(direct.count) / directSeconds, 1),
                     formatted(Self.percentile(direct, 0.5), 1), formatted(Self.percentile(direct, 0.99), 1), formatted(Self.rssMiB().current, 0)])
        for level in clients.split(separator: ",").compactMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
            let result = Self.load(clients: level, requests: requests, seconds: Double(seconds), port: listening, bodies: questions.map(\.body))
            rows.append(["\(level)", "\(result.sent)", "\(result.latencies.count)", "\(result.refused)",
                         formatted(Double(result.latencies.count) / result.seconds, 1), formatted(Self.percentile(result.latencies, 0.5), 1),
                         formatted(Self.percentile(result.latencies, 0.99), 1), formatted(Self.rssMiB().current, 0)])
            if result.failed > 0 { print("warning: \(result.failed) requests at \(level) clients failed (neither 200 nor 503)") }
        }
        printTable(rows)
        print("peak RSS \(formatted(Self.rssMiB().peak, 0)) MiB (the model, the store's map, the LRU, the server)")
        let stopper = DispatchSemaphore(value: 0)
        Task {
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            stopper.signal()
        }
        stopper.wait()
        _ = module.stop(timeout: 30)
    }

    /// The sample questions with at most 4 images, their images ingested.
    static func fill(store: CacheStore, model: AnsweringModel, samples: String, maxTokens: Int) throws -> ([Question], Int) {
        let lines = try String(contentsOfFile: samples + "/questions.jsonl", encoding: .utf8).split(separator: "\n")
        let parsed = try lines.map { line -> (String, [String]) in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            return (object["question"] as? String ?? "", object["images"] as? [String] ?? [])
        }.filter { !$0.1.isEmpty && $0.1.count <= 4 }
        var files: [String] = []
        for name in parsed.flatMap(\.1) where !files.contains(name) { files.append(name) }
        let ingestor = try Ingestor(store: store, model: model, options: IngestOptions(batchSize: 16))
        var digests: [String: Digest] = [:]
        _ = try ingestor.run(files.map { IngestSource(path: samples + "/" + $0, collection: "samples") }) { batch in
            for result in batch.results { digests[(result.source.path as NSString).lastPathComponent] = result.outcome.digest }
        }
        let questions = try parsed.map { question, names -> Question in
            let images = names.compactMap { digests[$0] }
            let object: [String: Any] = ["images": images.map(\.hex), "question": question, "max_tokens": maxTokens]
            return Question(body: Array(try JSONSerialization.data(withJSONObject: object)),
                            request: QueryRequest(images: images, question: question, generation: GenerationOptions(maxNewTokens: maxTokens)))
        }
        return (questions, files.count)
    }

    struct LoadResult {
        var sent = 0, refused = 0, failed = 0
        var latencies: [Double] = []
        var seconds = 0.0
    }

    /// `clients` threads, each sending one request at a time until `requests` were sent or the time is up.
    static func load(clients: Int, requests: Int, seconds: Double, port: Int, bodies: [[UInt8]]) -> LoadResult {
        final class Shared: @unchecked Sendable {
            let lock = NSLock()
            var result = LoadResult()
            var next = 0
        }
        let shared = Shared()
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        let start = DispatchTime.now().uptimeNanoseconds
        let group = DispatchGroup()
        for _ in 0..<clients {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                while true {
                    let index: Int? = shared.lock.withLock {
                        guard shared.next < requests, DispatchTime.now().uptimeNanoseconds < deadline else { return nil }
                        shared.next += 1
                        return shared.next - 1
                    }
                    guard let index else { return }
                    let began = DispatchTime.now().uptimeNanoseconds
                    let status = post(port: port, path: "/v1/ask", body: bodies[index % bodies.count])
                    let ms = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e6
                    shared.lock.withLock {
                        shared.result.sent += 1
                        switch status {
                        case 200: shared.result.latencies.append(ms)
                        case 503: shared.result.refused += 1
                        default: shared.result.failed += 1
                        }
                    }
                }
            }
            thread.start()
        }
        group.wait()
        var result = shared.lock.withLock { shared.result }
        result.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return result
    }

    /// One POST on a new connection; the status, or 0 on a socket error.
    static func post(port: Int, path: String, body: [UInt8]) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return 0 }
        let head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        let request = Array(head.utf8) + body
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return 0 }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let line = String(decoding: response.prefix(16), as: UTF8.self).split(separator: " ")
        return line.count >= 2 ? Int(line[1]) ?? 0 : 0
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }

    /// VmRSS and VmHWM of this process, MiB.
    static func rssMiB() -> (current: Double, peak: Double) {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func value(_ key: String) -> Double {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return 0 }
            return Double(line.split(separator: " ").dropFirst().first ?? "0").map { $0 / 1024 } ?? 0
        }
        return (value("VmRSS:"), value("VmHWM:"))
    }
}

/// The listening port, handed from the server's callback to the benchmark's thread.
private final class PortBox: @unchecked Sendable {
    private let condition = NSCondition()
    private var port: Int?

    func set(_ value: Int) { condition.withLock { port = value; condition.broadcast() } }

    func wait() -> Int {
        condition.withLock {
            while port == nil { condition.wait() }
            return port!
        }
    }
}
