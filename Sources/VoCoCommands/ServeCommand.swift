import ArgumentParser
import Foundation
import Logging
import VoCoPipeline
import VoCoServer
import VoCoStore
import VoCoStoreLMDB
import VoCoStoreRedis

/// `voco serve`: the query service (questions over stored collections, over HTTP).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the query service: answer questions over a store's collections from their stored caches, over HTTP.",
        discussion: """
            API: Schemas/query-api.json; limits, errors and an example session: docs/query-api.md. Binds \
            127.0.0.1 unless --listen says otherwise. The store is opened read-only: `voco ingest` or \
            `voco ingestd` may write it meanwhile (LMDB: one writer, any number of readers). SIGTERM or \
            SIGINT: stop taking requests, let the questions already admitted finish, exit.

            Exit codes: 0 after a graceful shutdown; 1 the service could not start or failed (store, \
            model, address in use); 64 bad arguments.
            """
    )

    @Option(help: ArgumentHelp(
        "The store: a directory (LMDB) or redis://host:port[,host:port...][/name] (default: $VOCO_STORE, else ~/.local/share/voco/store).",
        valueName: "dir-or-url"))
    var store: String?

    @Option(help: "Model directory (default: $VOCO_MODEL, else the bundled Models/voco-shapes).")
    var model: String?

    @Option(help: "Address to listen on: HOST, HOST:PORT, :PORT or [IPv6]:PORT (default 127.0.0.1:\(Self.defaultPort); port 0 = any free port).")
    var listen = "\(ServerOptions.defaultHost):\(Self.defaultPort)"

    @Option(help: "Bytes of decoded caches kept in memory (LRU).")
    var cacheBytes = 256 << 20

    @Option(help: "Longest question, in Unicode code points.")
    var maxQuestionChars = QueryServerOptions.defaultMaximumQuestionCharacters

    @Option(help: "Largest max_tokens a request may ask for.")
    var maxAnswerTokens = QueryServerOptions.defaultMaximumAnswerTokens

    @Option(help: "Most image digests in one request.")
    var maxImages = QueryServerOptions.defaultMaximumImages

    @Option(help: "Questions computed at once, each on a thread of its own.")
    var computeThreads = 1

    @Option(help: "Questions waiting for a compute thread; past computing + waiting, 503 with Retry-After.")
    var maxWaiting = QueryServerOptions.defaultMaximumWaiting

    @Option(help: "Seconds the questions in flight may take to finish on shutdown.")
    var shutdownGrace = 30

    @OptionGroup var server: ServerArguments

    @OptionGroup var compute: BackendOptions

    static let defaultPort = 8391

    func validate() throws {
        _ = try listenAddress()
        try require("cache-bytes", cacheBytes, in: 0...(1 << 40))
        try require("max-question-chars", maxQuestionChars, in: 1...1_000_000)
        try require("max-answer-tokens", maxAnswerTokens, in: 1...1_000_000)
        try require("max-images", maxImages, in: 1...100_000)
        try require("compute-threads", computeThreads, in: 1...256)
        try require("max-waiting", maxWaiting, in: 0...100_000)
        try require("shutdown-grace", shutdownGrace, in: 0...3600)
        if let problem = queryOptions.problem() { throw ValidationError(problem) }
    }

    func listenAddress() throws -> (host: String, port: Int) {
        try ServerArguments.listenAddress(listen, defaultPort: Self.defaultPort)
    }

    var queryOptions: QueryServerOptions {
        QueryServerOptions(maximumQuestionCharacters: maxQuestionChars, maximumAnswerTokens: maxAnswerTokens, maximumImages: maxImages,
                           computeThreads: computeThreads, maximumWaiting: maxWaiting)
    }

    /// The store, read-only: through LMDB's own readers (safe beside a writing process).
    func openStore() throws -> CacheStore {
        let location = store ?? LMDBStore.defaultPath
        if RedisStoreURL.isRedis(location) { return try StoreLocation.open(location, options: StoreOptions(readOnly: true)) }
        return try LMDBStore.open(path: location, options: StoreOptions(readOnly: true), lmdb: LMDBOptions(reads: .lmdb))
    }

    func run() throws {
        let logger = server.logger(label: "voco.serve")
        let options = try server.serverOptions(listen: try listenAddress(), defaultBodyBytes: 1 << 20, shutdownTimeout: .seconds(shutdownGrace))
        let store = try openStore()
        let answering = try AnsweringModel(directory: model ?? DefaultModel.path(), options: compute.loadOptions)
        compute.report(answering.engine)
        let service = try QueryService(store: store, model: answering, cacheBytes: cacheBytes)
        for warning in service.warnings { logger.warning("\(warning)") }
        let engine = QueryServiceEngine(service)
        let metrics = ServerMetrics()
        let module = try QueryModule(store: store, engine: engine, options: queryOptions, server: options, metrics: metrics, logger: logger)
        let application = ServerFoundation.buildApplication(options: options, modules: [module], metrics: metrics, logger: logger,
                                                            onListening: server.onListening(logger: logger))
        let grace = TimeInterval(shutdownGrace)
        serveUntilSignalled(application, options: options, logger: logger) {
            if !module.stop(timeout: grace) { logger.warning("questions still computing at exit") }
        }
    }
}
