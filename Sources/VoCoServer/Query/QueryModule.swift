import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import VoCoStore

// MARK: - The query service as a server module

/// What `voco serve` is started with, beyond the server's options: the request limits and the
/// bound on in-flight work.
public struct QueryServerOptions: Sendable {
    /// Longest question, in Unicode code points (JSON Schema's maxLength counts the same).
    public var maximumQuestionCharacters: Int
    /// Largest `max_tokens` a request may ask for.
    public var maximumAnswerTokens: Int
    /// Most digests in one request's `images`.
    public var maximumImages: Int
    /// Questions computing at once (each on a thread of its own).
    public var computeThreads: Int
    /// Questions waiting for a compute thread; past computing + waiting: 503 + Retry-After.
    public var maximumWaiting: Int
    /// What 503's Retry-After says, in seconds.
    public var retryAfterSeconds: Int

    public static let defaultMaximumQuestionCharacters = 2000
    public static let defaultMaximumAnswerTokens = 256
    public static let defaultMaximumImages = 64
    public static let defaultMaximumWaiting = 32

    public init(maximumQuestionCharacters: Int = defaultMaximumQuestionCharacters, maximumAnswerTokens: Int = defaultMaximumAnswerTokens,
                maximumImages: Int = defaultMaximumImages, computeThreads: Int = 1, maximumWaiting: Int = defaultMaximumWaiting,
                retryAfterSeconds: Int = 1) {
        self.maximumQuestionCharacters = maximumQuestionCharacters
        self.maximumAnswerTokens = maximumAnswerTokens
        self.maximumImages = maximumImages
        self.computeThreads = computeThreads
        self.maximumWaiting = maximumWaiting
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// Why these options cannot run, or nil.
    public func problem() -> String? {
        guard (1...1_000_000).contains(maximumQuestionCharacters) else { return "the question limit must be 1 to 1000000 characters (got \(maximumQuestionCharacters))" }
        guard (1...1_000_000).contains(maximumAnswerTokens) else { return "the answer-token limit must be 1 to 1000000 (got \(maximumAnswerTokens))" }
        guard (1...100_000).contains(maximumImages) else { return "the images-per-request limit must be 1 to 100000 (got \(maximumImages))" }
        guard (1...256).contains(computeThreads) else { return "the compute threads must be 1 to 256 (got \(computeThreads))" }
        guard (0...100_000).contains(maximumWaiting) else { return "the waiting limit must be 0 to 100000 (got \(maximumWaiting))" }
        guard (1...3600).contains(retryAfterSeconds) else { return "Retry-After must be 1 to 3600 seconds (got \(retryAfterSeconds))" }
        return nil
    }
}

/// `POST /v1/ask` (JSON and server-sent events), collections, members and images over one store
/// and one engine (the query library's `QueryService`).
public final class QueryModule: ServerModule, @unchecked Sendable {
    public let store: CacheStore
    public let engine: any QueryEngine
    public let options: QueryServerOptions
    let pool: ComputePool
    let routes: QueryRoutes

    public init(store: CacheStore, engine: any QueryEngine, options: QueryServerOptions, server: ServerOptions, metrics: ServerMetrics,
                logger: Logger) throws {
        if let problem = options.problem() { throw ServerError.invalidOption(problem) }
        self.store = store
        self.engine = engine
        self.options = options
        pool = ComputePool(threads: options.computeThreads, waiting: options.maximumWaiting)
        routes = QueryRoutes(store: store, engine: engine, pool: pool, options: options, maximumBodyBytes: server.maximumBodyBytes,
                             metrics: QueryMetrics(metrics, engine: engine, pool: pool), logger: logger)
        logger.info("query ready", metadata: [
            "store": "\(store.location)", "model": "\(engine.fingerprint.hex)", "compute_threads": "\(options.computeThreads)",
            "max_waiting": "\(options.maximumWaiting)",
        ])
    }

    public func addRoutes(to router: Router<ServerContext>) { routes.add(to: router) }

    public var services: [any Service] { [] }

    /// After the server stopped: lets the questions already admitted finish, then stops the
    /// compute threads; false on timeout.
    public func stop(timeout: TimeInterval) -> Bool { pool.stop(timeout: timeout) }

    /// Questions computing and waiting now.
    public var inFlight: (computing: Int, waiting: Int) { pool.counts }

    public func health() async -> ModuleHealth {
        let store = self.store
        do {
            let count = try await offload { try store.read { try $0.collections().count } }
            return ModuleHealth(name: "query", ok: true, detail: "\(count) collections; model \(engine.fingerprint.short)")
        } catch {
            return ModuleHealth(name: "query", ok: false, detail: "the store cannot be read")
        }
    }
}
