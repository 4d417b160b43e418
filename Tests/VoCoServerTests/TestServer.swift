import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import VoCoPipeline
import VoCoServer
import VoCoStore
import VoCoStoreLMDB
import VoCoTestSupport

// MARK: - The real application, in this process, on an ephemeral port

/// The bundled model, loaded once for every in-process server.
let bundledModel = Result { try AnsweringModel(directory: TestPaths.bundledModel) }

/// `voco ingestd`'s application built as the command builds it, listening on 127.0.0.1:0.
final class TestServer: @unchecked Sendable {
    let store: CacheStore
    let folder: String
    let module: IngestModule
    let application: InProcessApplication
    var router: Router<ServerContext> { application.router }
    var port: Int { application.port }

    /// `configure` adjusts the daemon's options (uploads and spool default to folders of the test's own).
    static func start(token: String? = nil, maximumBodyBytes: Int = 8 << 20, spool: Bool = false,
                      configure: (inout IngestDaemonOptions) -> Void = { _ in }) async throws -> TestServer {
        let folder = TestPaths.scratch("server")
        let store = try LMDBStore.open(path: folder + "/store", options: StoreOptions(create: true))
        var options = IngestDaemonOptions(uploads: folder + "/uploads", spool: spool ? folder + "/spool" : nil,
                                          worker: IngestWorkerSettings(batchSize: 4, idlePoll: 0.1), spoolSettle: 0.2, spoolInterval: 0.1)
        configure(&options)
        return try await TestServer(store: store, folder: folder, options: options,
                                    server: ServerOptions(port: 0, token: token, maximumBodyBytes: maximumBodyBytes))
    }

    init(store: CacheStore, folder: String, options: IngestDaemonOptions, server: ServerOptions) async throws {
        self.store = store
        self.folder = folder
        let metrics = ServerMetrics()
        module = try IngestModule(store: store, model: try bundledModel.get(), options: options, server: server, metrics: metrics,
                                  logger: InProcessApplication.quietLogger)
        application = try await InProcessApplication(server: server, modules: [module], metrics: metrics)
    }

    func client(token: String? = nil) -> TestHTTPClient { TestHTTPClient(port: port, token: token) }

    /// Graceful shutdown, as SIGTERM does it.
    func stop() async throws {
        try await application.stop()
        let module = self.module
        let idle = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: module.waitForWorker(timeout: 60)) }
        }
        if !idle { throw TestSupportError("the worker's thread did not stop") }
    }

    /// Polls a job until it is done or failed.
    func waitForJob(_ id: String, client: TestHTTPClient, timeout: TimeInterval = 60) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let job = try await client.get("/v1/jobs/\(id)").json()
            if let state = job["state"] as? String, state == "done" || state == "failed" { return job }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestSupportError("job \(id) did not finish in \(Int(timeout)) s")
    }
}

/// An application as the commands build it (ServerFoundation), running in this process on
/// 127.0.0.1:0 until `stop` (a graceful shutdown, as SIGTERM does it).
final class InProcessApplication: @unchecked Sendable {
    static var quietLogger: Logger {
        var logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        logger.logLevel = .critical
        return logger
    }

    let router: Router<ServerContext>
    let port: Int
    private let group: ServiceGroup
    private let running: Task<Void, Error>

    init(server: ServerOptions, modules: [any ServerModule], metrics: ServerMetrics) async throws {
        let logger = Self.quietLogger
        router = ServerFoundation.buildRouter(options: server, modules: modules, metrics: metrics)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let application = ServerFoundation.buildApplication(options: server, modules: modules, metrics: metrics, logger: logger) { port in
            continuation.yield(port)
        }
        group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [application], logger: logger))
        let group = self.group
        running = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestSupportError("the server did not start") }
        self.port = port
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await running.value
    }
}

/// A sample image's bytes.
func sample(_ name: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: (TestPaths.samples as NSString).appendingPathComponent(name))))
}
