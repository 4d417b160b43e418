import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

// MARK: - What a server module brings

/// The request context of every VoCo server.
public struct ServerContext: RequestContext {
    public var coreContext: CoreRequestContextStorage

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }
}

/// One part of a server (ingest, query): its routes and its long-running services. The
/// foundation adds the shared parts around them: problem details, metrics, the bearer token,
/// `/healthz` and `/metrics`.
public protocol ServerModule: Sendable {
    /// Adds the module's routes; they sit behind the token and the problem middleware.
    func addRoutes(to router: Router<ServerContext>)
    /// Workers and watchers, started with the server. On a graceful shutdown the HTTP server
    /// stops first, then these, in reverse order.
    var services: [any Service] { get }
    /// Whether the module can serve (answers `/healthz` with 503 when one cannot).
    func health() async -> ModuleHealth
}

public struct ModuleHealth: Codable, Sendable, Equatable {
    public var name: String
    public var ok: Bool
    public var detail: String?

    public init(name: String, ok: Bool, detail: String? = nil) {
        self.name = name
        self.ok = ok
        self.detail = detail
    }
}

// MARK: - Building the application

public enum ServerFoundation {
    /// Paths that need no token.
    public static let openPaths: Set<String> = ["/healthz"]

    /// The router with the shared middleware and routes, then each module's routes.
    public static func buildRouter(options: ServerOptions, modules: [any ServerModule], metrics: ServerMetrics) -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        let routes = RouteTable()
        router.add(middleware: ProblemMiddleware(routes: routes))
        router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
        if let token = options.token {
            router.add(middleware: BearerAuthMiddleware(token: Array(token.utf8), openPaths: openPaths))
        }
        router.get("/healthz") { _, _ -> Response in
            var checks: [ModuleHealth] = []
            for module in modules { checks.append(await module.health()) }
            let ok = checks.allSatisfy(\.ok)
            return try jsonResponse(Health(status: ok ? "ok" : "unavailable", modules: checks), status: ok ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: metrics.scrape())))
        }
        for module in modules { module.addRoutes(to: router) }
        routes.fill(router.routes.map { ($0.path.description, $0.method.rawValue) })
        return router
    }

    /// The application: the router, the modules' services, the listen address. `onListening`
    /// receives the bound port (useful with port 0).
    public static func buildApplication(options: ServerOptions, modules: [any ServerModule], metrics: ServerMetrics = ServerMetrics(),
                                        logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = buildRouter(options: options, modules: modules, metrics: metrics)
        return Application(
            router: router,
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "voco"),
            services: modules.flatMap(\.services),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? options.port
                logger.info("listening", metadata: ["host": "\(options.host)", "port": "\(port)"])
                await onListening(port)
            },
            logger: logger)
    }

    /// Runs `application` until SIGTERM or SIGINT, then shuts down gracefully: the HTTP server
    /// stops taking requests, then the modules' services finish or hand back their work; after
    /// `options.shutdownTimeout` whatever is left is cancelled.
    public static func run(_ application: some ApplicationProtocol, options: ServerOptions, logger: Logger) async throws {
        var configuration = ServiceGroupConfiguration(services: [application], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = options.shutdownTimeout
        do {
            try await ServiceGroup(configuration: configuration).run()
        } catch let error as IOError where [EADDRINUSE, EADDRNOTAVAIL, EACCES].contains(error.errnoCode) {
            throw ServerError.cannotListen(address: "\(options.host):\(options.port)", reason: String(cString: strerror(error.errnoCode)))
        }
    }

    struct Health: Codable {
        var status: String
        var modules: [ModuleHealth]
    }
}

/// A JSON response (sorted keys) with `status`.
public func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var headers = headers
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}

/// The whole request body, at most `limit` bytes. Over the limit: 413. A body that cannot be
/// read to its end (bad chunk framing, a client that closed before sending what its
/// Content-Length promised): 400, not a server failure.
public func collectBody(_ request: Request, limit: Int) async throws -> [UInt8] {
    do {
        return Array(try await request.body.collect(upTo: limit).readableBytesView)
    } catch is NIOTooManyBytesError {
        throw Problem(.bodyTooLarge, "the body is over the limit of \(limit) bytes")
    } catch {
        throw Problem(.badRequest, "the request body could not be read to its end (\(String(describing: error).prefix(200)))")
    }
}
