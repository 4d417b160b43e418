import Foundation
import VoCoStore

// MARK: - The backend

/// A store on a Redis Cluster (Schemas/store-redis.md): records, images, models and collections
/// as keys spread over the cluster's slots, the ingest queue as a stream with a consumer group.
/// Many processes on many hosts may open it, for writing too. There are no multi-key
/// transactions: a `write` body runs call by call, each call atomic on its own (`append` is one
/// script), and its blind puts are batched and sent in an order that keeps a crash harmless:
/// models, then images, then records, each batch acknowledged by a replica before the next call.
public final class RedisStore: StoreBackend, @unchecked Sendable {
    /// The Redis layout's own version (Schemas/store-redis.md), apart from LMDB's.
    public static let schemaVersion = 1

    public let url: RedisStoreURL
    public var location: String { url.description }
    public let codec: CodecSettings
    public let isReadOnly: Bool
    public let jobs: any JobQueue
    /// What the check of the cluster's persistence settings found but did not refuse, by setting
    /// and node (commands print them).
    public let warnings: [String]
    let client: RedisClient

    /// Opens (or with `options.create`, creates) the store the URL names, as a `CacheStore`.
    public static func open(url: String, options: StoreOptions = StoreOptions()) throws -> CacheStore {
        CacheStore(backend: try RedisStore(url: RedisStoreURL(url), options: options))
    }

    public init(url: RedisStoreURL, options: StoreOptions = StoreOptions()) throws {
        self.url = url
        isReadOnly = options.readOnly
        let location = url.description
        let router: ClusterRouter
        do { router = try ClusterRouter(url: url) } catch let error as StoreError { throw error } catch {
            throw StoreError.backend(path: location, operation: "connecting to the cluster", reason: "\(error)")
        }
        let keys = RedisKeys(name: url.name)
        let client = RedisClient(router: router, keys: keys, location: location)
        self.client = client
        warnings = try PersistenceCheck(client: client, strict: url.strictDurability && !options.readOnly).run()
        jobs = RedisJobQueue(client: client, readOnly: options.readOnly)
        codec = try Self.checkMeta(client: client, options: options)
    }

    /// Checks the schema version and reads the codec; a new store gets both (and its consumer group).
    private static func checkMeta(client: RedisClient, options: StoreOptions) throws -> CodecSettings {
        let keys = client.keys, location = client.location
        let requested = try options.codec?.validated()
        if !options.readOnly {
            // The group first: a store whose meta exists always has its group.
            let reply = try client.mapErrors("creating the job queue") {
                try client.router.execute(RedisCommand("XGROUP", "CREATE", keys.jobStream, RedisKeys.consumerGroup, "0", "MKSTREAM"),
                                          slot: RedisKeys.slot(keys.jobStream), replicate: true)
            }
            if let message = reply.errorMessage, !message.hasPrefix("BUSYGROUP") {
                throw client.error("creating the job queue", message, RedisCommand("XGROUP", "CREATE", keys.jobStream))
            }
        }
        var meta = try readMeta(client)
        if meta.isEmpty {
            guard options.create, !options.readOnly else { throw StoreError.noStore(path: location) }
            let codecJSON = String(decoding: try JSONEncoder.sortedKeys.encode(requested ?? .default), as: UTF8.self)
            // Only the first of several processes creating the store at once sets the meta.
            _ = try client.run("creating the store", key: keys.meta, RedisCommand(
                "EVAL", "if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end return 0", "1", keys.meta,
                "schema_version", String(schemaVersion), "codec", codecJSON, "created", Date().ISO8601Format(), "backend", "redis"), replicate: true)
            meta = try readMeta(client)
        }
        guard let version = meta["schema_version"] else {
            throw StoreError.notAStore(path: location, reason: "\(keys.meta) has no schema_version")
        }
        guard version == String(schemaVersion) else {
            throw StoreError.schemaMismatch(path: location, found: version, expected: schemaVersion)
        }
        guard let codecJSON = meta["codec"], let settings = try? JSONDecoder().decode(CodecSettings.self, from: Data(codecJSON.utf8)) else {
            throw StoreError.corruptEntry(path: location, database: "meta", key: "codec", reason: "missing or not a codec description")
        }
        if let requested, requested != settings {
            throw StoreError.codecMismatch(path: location, stored: settings.description, requested: requested.description)
        }
        return settings
    }

    private static func readMeta(_ client: RedisClient) throws -> [String: String] {
        let fields = try client.run("reading the store's meta", key: client.keys.meta, RedisCommand("HGETALL", client.keys.meta)).elements ?? []
        return Dictionary(stride(from: 0, to: fields.count - 1, by: 2).map { (fields[$0].text ?? "", fields[$0 + 1].text ?? "") }) { a, _ in a }
    }

    // MARK: Transactions

    public func read<T>(_ body: (any StoreReadTransaction) throws -> T) throws -> T {
        try body(RedisReadTransaction(client: client))
    }

    /// Runs `body` call by call. Its puts (models, images, records) wait in a buffer until the
    /// end of the body or a call that needs them out, then go out pipelined, in that order of
    /// kinds (`RedisWriteTransaction`). When `body` throws, the puts still in the buffer are
    /// dropped: as if the process had stopped after the last call that went out.
    public func write<T>(_ body: (any StoreWriteTransaction) throws -> T) throws -> T {
        guard !isReadOnly else { throw StoreError.readOnly(path: location) }
        let transaction = RedisWriteTransaction(client: client)
        let result = try body(transaction)
        try transaction.flush()
        return result
    }

    public func checkStructure() throws -> [VerifyFailure] {
        try RedisStructureCheck(client: client).run()
    }

    /// Memory in use and the memory limit, summed over the masters (0: no limit).
    public func storageFigures() -> [String: Int] {
        var used = 0, limit = 0
        for master in client.router.masters {
            guard let info = try? client.router.direct(RedisCommand("INFO", "memory"), to: master).text else { continue }
            for line in info.split(whereSeparator: \.isNewline) {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, let value = Int(parts[1]) else { continue }
                if parts[0] == "used_memory" { used += value }
                if parts[0] == "maxmemory" { limit += value }
            }
        }
        return ["schemaVersion": Self.schemaVersion, "usedBytes": used, "mapSize": limit]
    }

    // MARK: For tests and tools

    /// Deletes every key of this store (all its records, collections, jobs and meta).
    public func destroy() throws {
        let keys = try client.scan("removing the store", matching: "\(url.name):*")
        _ = try client.runAll("removing the store", slots: keys.map { (HashSlot.of($0), RedisCommand([Array("DEL".utf8), $0])) }, replicate: true)
    }
}
