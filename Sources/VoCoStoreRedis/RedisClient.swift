import Foundation
import VoCoStore

// MARK: - Commands by key, errors as StoreError

/// The router seen by key: a command goes to the slot of the key it names, a Redis error or a
/// cluster that stays unreachable becomes a `StoreError` naming the store and the operation.
final class RedisClient: @unchecked Sendable {
    let router: ClusterRouter
    let keys: RedisKeys
    /// How errors name the store (the URL without its password).
    let location: String
    /// Registered models, as read: a fingerprint's descriptor never changes once registered.
    private var models: [Digest: ModelDescriptor] = [:]
    private let lock = NSLock()

    func knownModel(_ fingerprint: Digest) -> ModelDescriptor? { lock.withLock { models[fingerprint] } }
    func remember(_ descriptor: ModelDescriptor) { lock.withLock { models[descriptor.fingerprint] = descriptor } }
    func forgetModels() { lock.withLock { models = [:] } }

    init(router: ClusterRouter, keys: RedisKeys, location: String) {
        self.router = router
        self.keys = keys
        self.location = location
    }

    /// One command on the node serving `key`; with `replicate`, acknowledged by replicas.
    func run(_ operation: String, key: String, _ command: RedisCommand, replicate: Bool = false) throws -> RedisReply {
        try runAll(operation, [(key, command)], replicate: replicate)[0]
    }

    /// Many commands, pipelined per node; replies in order. Any error reply throws.
    func runAll(_ operation: String, _ commands: [(key: String, command: RedisCommand)], replicate: Bool = false) throws -> [RedisReply] {
        try runAll(operation, slots: commands.map { (RedisKeys.slot($0.key), $0.command) }, replicate: replicate)
    }

    /// The same with the slots given.
    func runAll(_ operation: String, slots commands: [(slot: Int, command: RedisCommand)], replicate: Bool = false) throws -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        let replies = try mapErrors(operation) { try router.pipeline(commands, replicate: replicate) }
        for (reply, command) in zip(replies, commands) {
            if let message = reply.errorMessage { throw error(operation, message, command.command) }
        }
        return replies
    }

    /// Every key matching `pattern`, sorted bytewise.
    func scan(_ operation: String, matching pattern: String) throws -> [[UInt8]] {
        try mapErrors(operation) { try router.scanKeys(matching: pattern) }.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// Runs `body`, turning the router's errors into `StoreError.backend`.
    func mapErrors<T>(_ operation: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as StoreError { throw error } catch {
            throw StoreError.backend(path: location, operation: operation, reason: "\(error)")
        }
    }

    func error(_ operation: String, _ message: String, _ command: RedisCommand) -> StoreError {
        if message.hasPrefix("OOM") {
            return .backend(path: location, operation: operation,
                            reason: "the cluster is out of memory (\(message)); raise maxmemory or add shards, or free space (voco inspect rm, then gc)")
        }
        if message.hasPrefix("NOAUTH") || message.hasPrefix("WRONGPASS") || message.hasPrefix("NOPERM") {
            return .backend(path: location, operation: operation, reason: "\(message); pass the password in the store URL (?password=... or ?password-file=...)")
        }
        return .backend(path: location, operation: operation, reason: "\(command.description): \(message)")
    }

    // MARK: Typed replies

    func corrupt(_ database: String, _ key: String, _ reason: String) -> StoreError {
        .corruptEntry(path: location, database: database, key: key, reason: reason)
    }

    func json<T: Decodable>(_ type: T.Type, _ reply: RedisReply, database: String, key: String) throws -> T? {
        guard let bytes = reply.bytes else { return nil }
        do { return try JSONDecoder().decode(T.self, from: Data(bytes)) } catch { throw corrupt(database, key, "\(error)") }
    }
}

extension JSONEncoder {
    /// Deterministic JSON (sorted keys) for the store's values, as the LMDB backend writes them.
    static var sortedKeys: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
