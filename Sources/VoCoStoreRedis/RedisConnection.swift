import CHiredis
import Foundation

// MARK: - Replies and commands

/// One RESP2 reply, copied out of hiredis.
public enum RedisReply: Equatable, Sendable {
    case string([UInt8])
    case status(String)
    case integer(Int64)
    case array([RedisReply])
    case null
    case error(String)

    init(_ reply: UnsafeMutablePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING: self = .string(r.str.map { Array(UnsafeRawBufferPointer(start: $0, count: r.len)) } ?? [])
        case REDIS_REPLY_STATUS: self = .status(r.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: r.len), as: UTF8.self) } ?? "")
        case REDIS_REPLY_ERROR: self = .error(r.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: r.len), as: UTF8.self) } ?? "")
        case REDIS_REPLY_INTEGER: self = .integer(r.integer)
        case REDIS_REPLY_ARRAY: self = .array((0..<r.elements).map { RedisReply(r.element[$0]!) })
        default: self = .null
        }
    }

    /// A bulk or status string's bytes.
    var bytes: [UInt8]? {
        switch self {
        case let .string(b): return b
        case let .status(s): return Array(s.utf8)
        default: return nil
        }
    }

    var text: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    var integer: Int64? {
        switch self {
        case let .integer(n): return n
        case let .string(b): return Int64(String(decoding: b, as: UTF8.self))
        default: return nil
        }
    }

    var elements: [RedisReply]? { if case let .array(a) = self { return a } else { return nil } }

    var errorMessage: String? { if case let .error(e) = self { return e } else { return nil } }
}

/// A command: its name and arguments as bytes (binary-safe).
public struct RedisCommand: Sendable, CustomStringConvertible {
    public var arguments: [[UInt8]]

    public init(_ arguments: [[UInt8]]) { self.arguments = arguments }

    public init(_ name: String, _ rest: RedisArgument...) {
        arguments = [Array(name.utf8)] + rest.map(\.redisBytes)
    }

    var byteCount: Int { arguments.reduce(0) { $0 + $1.count } }

    /// The command and its first argument (a key, usually): never the values.
    public var description: String {
        arguments.prefix(2).map { String(decoding: $0.prefix(120), as: UTF8.self) }.joined(separator: " ")
    }
}

public protocol RedisArgument { var redisBytes: [UInt8] { get } }
extension String: RedisArgument { public var redisBytes: [UInt8] { Array(utf8) } }
extension Array: RedisArgument where Element == UInt8 { public var redisBytes: [UInt8] { self } }
extension Int: RedisArgument { public var redisBytes: [UInt8] { Array(String(self).utf8) } }
extension Int64: RedisArgument { public var redisBytes: [UInt8] { Array(String(self).utf8) } }

// MARK: - One node

/// A node of the cluster, as CLUSTER SLOTS names it.
public struct RedisEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The connection broke or never came up: the command may or may not have run.
struct RedisIOError: Error, CustomStringConvertible {
    let endpoint: RedisEndpoint
    let message: String
    var description: String { "\(endpoint): \(message)" }
}

/// The node refused the credentials: retrying will not help.
struct RedisAuthError: Error, CustomStringConvertible {
    let endpoint: RedisEndpoint
    let message: String
    var description: String { "\(endpoint) refused the credentials: \(message)" }
}

/// A blocking hiredis connection to one node. Not thread-safe: a pool lends it to one thread at a time.
final class RedisConnection {
    let endpoint: RedisEndpoint
    private let context: UnsafeMutablePointer<redisContext>
    /// Set once an I/O error left the connection in an unknown state.
    private(set) var isBroken = false

    init(endpoint: RedisEndpoint, timeout: TimeInterval, username: String?, password: String?) throws {
        self.endpoint = endpoint
        let tv = Self.timeval(timeout)
        guard let context = redisConnectWithTimeout(endpoint.host, Int32(clamping: endpoint.port), tv) else {
            throw RedisIOError(endpoint: endpoint, message: "cannot allocate a hiredis context")
        }
        if context.pointee.err != 0 {
            let message = Self.errorString(context)
            redisFree(context)
            throw RedisIOError(endpoint: endpoint, message: "cannot connect: \(message)")
        }
        self.context = context
        redisSetTimeout(context, tv)
        _ = redisEnableKeepAlive(context)
        if let password {
            let auth = username.map { RedisCommand("AUTH", $0, password) } ?? RedisCommand("AUTH", password)
            if let message = try send([auth])[0].errorMessage {
                throw RedisAuthError(endpoint: endpoint, message: message)
            }
        }
    }

    deinit { redisFree(context) }

    /// Sends the commands in one pipeline and reads one reply per command, in order. A Redis
    /// error is a `.error` reply; a broken connection throws `RedisIOError` and marks it broken.
    func send(_ commands: [RedisCommand]) throws -> [RedisReply] {
        guard !isBroken else { throw RedisIOError(endpoint: endpoint, message: "the connection is broken") }
        for command in commands { try append(command) }
        return try commands.map { _ in try readReply() }
    }

    private func append(_ command: RedisCommand) throws {
        // One contiguous buffer of all arguments; argv points into it. [argc] pointers and lengths.
        let joined = command.arguments.reduce(into: [UInt8]()) { $0 += $1 }
        let lengths = command.arguments.map(\.count)
        let status: Int32 = joined.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!).assumingMemoryBound(to: CChar.self)
            var offset = 0
            let argv: [UnsafePointer<CChar>?] = lengths.map { length in
                defer { offset += length }
                return base + offset
            }
            return argv.withUnsafeBufferPointer { argvBuffer in
                lengths.withUnsafeBufferPointer { lengthBuffer in
                    redisAppendCommandArgv(context, Int32(lengths.count), UnsafeMutablePointer(mutating: argvBuffer.baseAddress), lengthBuffer.baseAddress)
                }
            }
        }
        if status != REDIS_OK { throw fail("cannot queue \(command)") }
    }

    private func readReply() throws -> RedisReply {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw fail("no reply") }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return RedisReply(reply)
    }

    private func fail(_ what: String) -> RedisIOError {
        isBroken = true
        return RedisIOError(endpoint: endpoint, message: "\(what): \(Self.errorString(context))")
    }

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let text = String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            return text.isEmpty ? "I/O error" : text
        }
    }

    private static func timeval(_ seconds: TimeInterval) -> timeval {
        let clamped = max(0.001, min(seconds, 86_400))
        return Glibc.timeval(tv_sec: Int(clamped), tv_usec: Int((clamped - floor(clamped)) * 1_000_000))
    }
}
