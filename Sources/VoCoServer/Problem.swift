import Foundation
import Hummingbird

// MARK: - RFC 9457 problem details: every error a VoCo server answers

/// A kind of error with a stable `type` URI (`urn:voco:problem:<slug>`), its HTTP status and
/// title. Clients branch on `type`; `detail` says what happened this time.
public struct ProblemType: Sendable, Equatable {
    public let slug: String
    public let status: HTTPResponse.Status
    public let title: String

    public init(_ slug: String, _ status: HTTPResponse.Status, _ title: String) {
        self.slug = slug
        self.status = status
        self.title = title
    }

    public var uri: String { "urn:voco:problem:\(slug)" }

    // MARK: Shared by every server
    public static let badRequest = ProblemType("bad-request", .badRequest, "The request is malformed")
    public static let unauthorized = ProblemType("unauthorized", .unauthorized, "A valid bearer token is required")
    public static let notFound = ProblemType("not-found", .notFound, "No such resource")
    public static let methodNotAllowed = ProblemType("method-not-allowed", .methodNotAllowed, "The resource does not accept this method")
    public static let bodyTooLarge = ProblemType("body-too-large", .contentTooLarge, "The request body is over the server's limit")
    public static let unsupportedMediaType = ProblemType("unsupported-media-type", .unsupportedMediaType, "The body is not of a type this route takes")
    public static let unavailable = ProblemType("unavailable", .serviceUnavailable, "The server cannot take this request now")
    public static let internalError = ProblemType("internal", .internalServerError, "The server failed to handle the request")
    public static let storeError = ProblemType("store-error", .internalServerError, "The store failed")

    /// Every type above and those servers register, for the docs and the tests.
    public static let shared: [ProblemType] = [badRequest, unauthorized, notFound, methodNotAllowed, bodyTooLarge,
                                               unsupportedMediaType, unavailable, internalError, storeError]
}

/// An error answered as `application/problem+json`.
public struct Problem: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    public var type: ProblemType
    public var detail: String
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`).
    public var headers: HTTPFields

    public init(_ type: ProblemType, _ detail: String, headers: HTTPFields = [:]) {
        self.type = type
        self.detail = detail
        self.headers = headers
    }

    public var status: HTTPResponse.Status { type.status }
    public var description: String { "\(type.slug): \(detail)" }

    /// The body: RFC 9457 members.
    struct Body: Codable, Sendable {
        var type: String
        var title: String
        var status: Int
        var detail: String
        var instance: String?
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = Body(type: type.uri, title: type.title, status: Int(type.status.code), detail: detail, instance: request.uri.path)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var headers = headers
        headers[.contentType] = "application/problem+json"
        return Response(status: type.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(body))))
    }
}

// MARK: - Every error becomes a problem

/// Outermost middleware: turns whatever a route throws into a problem response, so that no
/// error reaches a client in another shape. Unknown errors are logged and answered as `internal`
/// without their text (it may name server paths).
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The routes, to tell a wrong method (405) from a wrong path (404).
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            return try problem.response(from: request, context: context)
        } catch let error as HTTPError {
            if error.status == .notFound, let allowed = routes.methods(for: request.uri.path) {
                return try Problem(.methodNotAllowed, "\(request.method.rawValue) is not one of this path's methods: \(allowed)",
                                   headers: [.allow: allowed]).response(from: request, context: context)
            }
            return try Self.problem(error.status, detail: error.body, headers: error.headers).response(from: request, context: context)
        } catch let error as any HTTPResponseError {
            return try Self.problem(error.status, detail: nil, headers: [:]).response(from: request, context: context)
        } catch {
            context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return try Problem(.internalError, "the server failed to handle this request; its log says why").response(from: request, context: context)
        }
    }

    /// The problem for an error Hummingbird (or NIO) threw with only a status.
    static func problem(_ status: HTTPResponse.Status, detail: String?, headers: HTTPFields) -> Problem {
        let type = ProblemType.shared.first { $0.status == status } ?? ProblemType("http-\(status.code)", status, status.reasonPhrase)
        let detail = detail ?? (status == .notFound ? "no route for this path and method" : status.reasonPhrase)
        return Problem(type, detail, headers: headers)
    }
}

// MARK: - Which methods a path has

/// The router's routes as path patterns (`{name}` matches one segment), filled once the routes
/// are added.
final class RouteTable: @unchecked Sendable {
    private let lock = NSLock()
    private var routes: [(segments: [Substring], method: String)] = []

    func fill(_ descriptions: [(path: String, method: String)]) {
        lock.withLock { routes = descriptions.map { ($0.path.split(separator: "/"), $0.method) } }
    }

    /// "GET, POST" when `path` matches a route with some method; nil when it matches none.
    func methods(for path: String) -> String? {
        let segments = path.split(separator: "/")
        let methods = lock.withLock {
            routes.filter { route in
                route.segments.count == segments.count
                    && zip(route.segments, segments).allSatisfy { $0.hasPrefix("{") || $0.hasPrefix(":") || $0 == $1 }
            }.map(\.method)
        }
        return methods.isEmpty ? nil : Set(methods).sorted().joined(separator: ", ")
    }
}
