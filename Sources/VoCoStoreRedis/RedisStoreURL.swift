import Foundation
import VoCoStore

// MARK: - The store URL

/// `redis://[user[:password]@]host:port[,host:port...][/name][?option=value&...]`: a store on a
/// Redis Cluster (docs/store-redis.md). The hosts are seeds: any one reachable node is enough,
/// the others are learnt from CLUSTER SLOTS. `name` (default `voco`) keeps several stores apart
/// on one cluster: every key of the store starts with `name:`.
public struct RedisStoreURL: Equatable, Sendable, CustomStringConvertible {
    public var seeds: [RedisEndpoint]
    public var name: String
    public var username: String?
    public var password: String?
    /// How many replicas must hold a write before it is acknowledged (WAIT), at most as many as
    /// the shard has alive. 0 turns WAIT off.
    public var waitReplicas = 1
    /// How long WAIT may take, in milliseconds.
    public var waitTimeoutMs = 2000
    /// Connect and command timeout, in seconds.
    public var timeout: TimeInterval = 5
    /// How long a command keeps being retried while the cluster fails over, in seconds.
    public var failoverTimeout: TimeInterval = 30
    /// `strict`: refuse a cluster whose persistence settings break the guarantees; `relaxed`: warn.
    public var strictDurability = true

    public static let defaultName = "voco"
    public static let scheme = "redis://"

    /// Whether a --store value names a Redis store rather than a directory.
    public static func isRedis(_ location: String) -> Bool { location.lowercased().hasPrefix(scheme) }

    public init(_ text: String) throws {
        func bad(_ reason: String) -> StoreError {
            StoreError.invalidArgument("store URL '\(RedisStoreURL.redacted(text))': \(reason) (form: redis://host:port[,host:port...][/name][?password=...])")
        }
        guard Self.isRedis(text) else { throw bad("it does not start with redis://") }
        var rest = Substring(text.dropFirst(Self.scheme.count))
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") { (rest, query) = (rest[..<q], rest[rest.index(after: q)...]) }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") { (rest, path) = (rest[..<slash], rest[rest.index(after: slash)...]) }
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = userinfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let user = try Self.decode(parts[0], bad)
            username = user.isEmpty ? nil : user
            if parts.count == 2 { password = try Self.decode(parts[1], bad) }
        }
        seeds = try rest.split(separator: ",", omittingEmptySubsequences: false).map { try Self.endpoint($0, bad) }
        name = path.isEmpty ? Self.defaultName : try Self.decode(path, bad)
        guard (1...64).contains(name.utf8.count), name.utf8.allSatisfy({ Self.nameBytes.contains($0) }) else {
            throw bad("the store name '\(name.prefix(80))' must be 1 to 64 of A-Z a-z 0-9 . _ -")
        }
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = try Self.decode(kv[0], bad), value = kv.count == 2 ? try Self.decode(kv[1], bad) : ""
            try apply(key, value, bad)
        }
    }

    private mutating func apply(_ key: String, _ value: String, _ bad: (String) -> StoreError) throws {
        func number(_ range: ClosedRange<Double>) throws -> Double {
            guard let n = Double(value), n.isFinite, range.contains(n) else {
                throw bad("\(key)=\(value) is not a number in \(Int(range.lowerBound))...\(Int(range.upperBound))")
            }
            return n
        }
        switch key {
        case "password": password = value
        case "user": username = value.isEmpty ? nil : value
        case "password-file":
            guard let data = FileManager.default.contents(atPath: value) else { throw bad("cannot read the password file \(value)") }
            password = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
        case "tls":
            switch value {
            case "no", "false", "0": break
            case "yes", "true", "1":
                throw bad("tls=\(value): this build talks to Redis through Debian 12's hiredis 0.14, which has no TLS (hiredis_ssl came with hiredis 1.0); reach the cluster over a trusted network or a TLS tunnel (stunnel, spiped) on loopback")
            default: throw bad("tls=\(value) is not yes or no")
            }
        case "wait": waitReplicas = Int(try number(0...16))
        case "wait-timeout": waitTimeoutMs = Int(try number(1...600_000))
        case "timeout": timeout = try number(0.001...3600)
        case "failover-timeout": failoverTimeout = try number(0...3600)
        case "durability":
            switch value {
            case "strict": strictDurability = true
            case "relaxed": strictDurability = false
            default: throw bad("durability=\(value) is not strict or relaxed")
            }
        default: throw bad("unknown option '\(key)' (known: password, password-file, user, tls, wait, wait-timeout, timeout, failover-timeout, durability)")
        }
    }

    /// The URL with the password left out: how errors and tools name the store.
    public var description: String {
        let user = username.map { "\($0)@" } ?? ""
        let path = name == Self.defaultName ? "" : "/\(name)"
        return Self.scheme + user + seeds.map(\.description).joined(separator: ",") + path
    }

    /// `text` with any password replaced by `***`, for messages about a URL that did not parse.
    public static func redacted(_ text: String) -> String {
        var out = text
        let start = out.index(out.startIndex, offsetBy: min(out.count, scheme.count))
        let authorityEnd = out[start...].firstIndex(where: { $0 == "/" || $0 == "?" }) ?? out.endIndex
        if let at = out[start..<authorityEnd].lastIndex(of: "@"), let colon = out[start..<at].firstIndex(of: ":") {
            out.replaceSubrange(out.index(after: colon)..<at, with: "***")
        }
        var from = out.startIndex
        while let range = out.range(of: "password=", range: from..<out.endIndex) {
            let end = out[range.upperBound...].firstIndex(of: "&") ?? out.endIndex
            out.replaceSubrange(range.upperBound..<end, with: "***")
            from = out.index(range.upperBound, offsetBy: 3)
        }
        return out
    }

    private static let nameBytes = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-".utf8))

    private static func decode(_ part: Substring, _ bad: (String) -> StoreError) throws -> String {
        guard let decoded = String(part).removingPercentEncoding else { throw bad("'\(part.prefix(40))' has a bad %-escape") }
        return decoded
    }

    private static func endpoint(_ text: Substring, _ bad: (String) -> StoreError) throws -> RedisEndpoint {
        var host: Substring, portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {  // [IPv6]:port
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            guard after.hasPrefix(":") else { throw bad("'\(text)' has no :port") }
            portText = after.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw bad("'\(text)' has no :port") }
            (host, portText) = (text[..<colon], text[text.index(after: colon)...])
        }
        guard !host.isEmpty else { throw bad("a node '\(text)' has no host") }
        guard let port = Int(portText), (1...65535).contains(port) else { throw bad("'\(portText)' is not a port (1-65535)") }
        return RedisEndpoint(host: String(host), port: port)
    }
}
