import Foundation
import Hummingbird

// MARK: - Bearer token

/// Every route but the open ones (`/healthz`) needs `Authorization: Bearer <token>` when a
/// token is set. The comparison takes the same time wherever the tokens differ.
struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]
    let openPaths: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard openPaths.contains(request.uri.path) || authorized(request.headers[.authorization]) else {
            throw Problem(.unauthorized, "send the server's token as 'Authorization: Bearer <token>'",
                          headers: [.wwwAuthenticate: "Bearer realm=\"voco\""])
        }
        return try await next(request, context)
    }

    func authorized(_ header: String?) -> Bool {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return false }
        let given = Array(header.utf8.dropFirst(7))
        var difference = UInt8(given.count == token.count ? 0 : 1)
        for i in 0..<token.count { difference |= token[i] ^ (i < given.count ? given[i] : 0) }
        return difference == 0
    }
}

// MARK: - Request counts

/// Counts requests by route pattern and status in the server's registry.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var status = 500
        defer {
            metrics.countRequest(method: request.method.rawValue, route: context.endpointPath ?? "unmatched", status: status,
                                 duration: ContinuousClock.now - started)
        }
        do {
            let response = try await next(request, context)
            status = Int(response.status.code)
            return response
        } catch let error as any HTTPResponseError {
            status = Int(error.status.code)
            throw error
        }
    }
}
