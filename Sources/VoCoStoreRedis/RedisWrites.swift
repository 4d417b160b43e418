import Foundation
import VoCoStore

// MARK: - Writes

/// One `write` body on the cluster. Puts wait in a buffer; the end of the body, any call that is
/// not a put (a delete, an append) and any read that covers many keys send them all: first the
/// models and weight hashes, then the image entries, then the records, each kind acknowledged
/// (WAIT) before the next. A read of one key sends only what it would miss (the kinds up to that
/// key's, in the same order). So a crash never leaves a record without its image entry or model,
/// and never a member without its record when the caller puts the record before appending
/// (ingest does): only garbage that gc removes.
final class RedisWriteTransaction: RedisReads, RecordWriting, CatalogWriting {
    let client: RedisClient
    let memo = TransactionMemo()

    /// In the order they are sent.
    enum Kind: Int, CaseIterable { case models, images, records }
    // [Kind] the buffered puts of each kind, in call order, and the keys they write.
    private var pending: [[(key: String, command: RedisCommand)]] = Kind.allCases.map { _ in [] }
    private var pendingKeys: [Set<String>] = Kind.allCases.map { _ in [] }

    init(client: RedisClient) { self.client = client }

    func prepare(_ key: String?) throws {
        guard let key else { return try flush() }
        if let kind = Kind.allCases.last(where: { pendingKeys[$0.rawValue].contains(key) }) { try flush(through: kind) }
    }

    /// Sends the buffered puts, kind by kind.
    func flush(through last: Kind = .records) throws {
        for kind in Kind.allCases where kind.rawValue <= last.rawValue && !pending[kind.rawValue].isEmpty {
            _ = try client.runAll("writing \(kind)", pending[kind.rawValue], replicate: true)
            pending[kind.rawValue] = []
            pendingKeys[kind.rawValue] = []
        }
    }

    private func buffer(_ kind: Kind, _ key: String, _ command: RedisCommand) {
        pending[kind.rawValue].append((key, command))
        pendingKeys[kind.rawValue].insert(key)
    }

    /// Runs one call that is not a put: the buffer goes first.
    private func now(_ operation: String, key: String, _ command: RedisCommand) throws -> RedisReply {
        try flush()
        return try client.run(operation, key: key, command, replicate: true)
    }

    // MARK: Records

    func putRecord(_ key: RecordKey, _ bytes: [UInt8]) throws {
        buffer(.records, keys.record(key), RedisCommand("SET", keys.record(key), bytes))
    }

    /// SET NX: of two writers making a model's reference at once, one wins and the other's put
    /// is refused, whatever the order their calls reach the cluster in.
    func putRecordIfAbsent(_ key: RecordKey, _ bytes: [UInt8]) throws -> Bool {
        let reply = try now("putting a record if absent", key: keys.record(key), RedisCommand("SET", keys.record(key), bytes, "NX"))
        return reply == .status("OK")  // nil (.null) when the key held a record already
    }

    func deleteRecord(_ key: RecordKey) throws -> Bool {
        try now("deleting a record", key: keys.record(key), RedisCommand("DEL", keys.record(key))).integer == 1
    }

    func deleteRawRecord(_ key: [UInt8]) throws -> Bool {
        try flush()
        let stored = keys.recordKey(raw: key)
        return try client.runAll("deleting a record", slots: [(HashSlot.of(stored), RedisCommand([Array("DEL".utf8), stored]))],
                                 replicate: true)[0].integer == 1
    }

    /// Pipelined per node, acknowledged by replicas.
    func deleteRawRecords(_ raw: [[UInt8]]) throws -> Int {
        try flush()
        let stored = raw.map(keys.recordKey(raw:))
        return try client.runAll("deleting records", slots: stored.map { (HashSlot.of($0), RedisCommand([Array("DEL".utf8), $0])) }, replicate: true)
            .reduce(0) { $0 + Int($1.integer ?? 0) }
    }

    // MARK: Catalog

    func putModel(_ descriptor: ModelDescriptor) throws {
        memo.models[descriptor.fingerprint] = descriptor
        buffer(.models, keys.models, RedisCommand("HSET", keys.models, descriptor.fingerprint.hex, Array(try JSONEncoder.sortedKeys.encode(descriptor))))
    }

    func putImage(_ digest: Digest, _ info: ImageInfo) throws {
        buffer(.images, keys.image(digest), RedisCommand("SET", keys.image(digest), Array(try JSONEncoder.sortedKeys.encode(info))))
    }

    func deleteImage(_ digest: Digest) throws -> Bool {
        try now("deleting an image entry", key: keys.image(digest), RedisCommand("DEL", keys.image(digest))).integer == 1
    }

    func deleteImages(_ digests: [Digest]) throws -> Int {
        try flush()
        return try client.runAll("deleting image entries", digests.map { (keys.image($0), RedisCommand("DEL", keys.image($0))) }, replicate: true)
            .reduce(0) { $0 + Int($1.integer ?? 0) }
    }

    func cacheFileHash(_ entry: FileHashEntry) throws {
        let field = Digest.sha256(Array(entry.identity.utf8)).hex
        buffer(.models, keys.fileHashes, RedisCommand("HSET", keys.fileHashes, field, Array(try JSONEncoder.sortedKeys.encode(entry))))
    }

    /// One script on the collection's slot: existing members keep their ordinal, new ones get the
    /// next ones (the highest score + 1), the name key is set; no other writer sees half of it.
    func append(_ images: [Digest], to collection: String) throws -> [UInt64] {
        guard !images.isEmpty else { return [] }
        let members = keys.members(collection)
        let reply = try now("adding to collection \(collection)", key: members, RedisCommand(
            [Array("EVAL".utf8), Array(Self.appendScript.utf8), Array("2".utf8), Array(members.utf8), Array(keys.collectionName(collection).utf8),
             Array(collection.utf8)] + images.map { Array($0.hex.utf8) }))
        guard let ordinals = reply.elements?.compactMap({ $0.integer.flatMap(UInt64.init(exactly:)) }), ordinals.count == images.count else {
            throw client.corrupt("collections", collection, "the append script answered \(reply)")
        }
        return ordinals
    }

    func removeCollection(_ name: String) throws -> Int {
        let reply = try now("removing collection \(name)", key: keys.members(name), RedisCommand(
            "EVAL", "local n = redis.call('ZCARD', KEYS[1]) redis.call('DEL', KEYS[1], KEYS[2]) return n", "2",
            keys.members(name), keys.collectionName(name)))
        return Int(reply.integer ?? 0)
    }

    func deleteRawEntry(_ namespace: CatalogNamespace, key: [UInt8]) throws -> Bool {
        try flush()
        memo.models = [:]
        client.forgetModels()
        func field(_ raw: ArraySlice<UInt8>) -> [UInt8] { raw.count == 32 ? Array(Digest(bytes: Array(raw))!.hex.utf8) : Array(raw) }
        let command: RedisCommand
        switch namespace {
        case .images:
            command = RedisCommand([Array("DEL".utf8), Array(keys.imagePrefix.utf8) + field(key[...])])
        case .models:
            guard let kind = key.first, kind == 1 || kind == 2 else { return false }
            command = RedisCommand([Array("HDEL".utf8), Array((kind == 1 ? keys.models : keys.fileHashes).utf8), field(key.dropFirst())])
        case .collections, .members:
            guard let zero = key.firstIndex(of: 0) else { return false }
            let members = Array(keys.members(String(decoding: key[..<zero], as: UTF8.self)).utf8)
            let rest = key[(zero + 1)...]
            if namespace == .members {
                command = RedisCommand([Array("ZREM".utf8), members, field(rest)])
            } else {
                let score = rest.count == 8 ? Array(String(rest.withUnsafeBytes { readBigEndian($0) }).utf8) : Array(rest)
                command = RedisCommand([Array("ZREMRANGEBYSCORE".utf8), members, score, score])
            }
        }
        let stored = command.arguments[1]
        return try client.runAll("deleting a \(namespace) entry", slots: [(HashSlot.of(stored), command)], replicate: true)[0].integer ?? 0 > 0
    }

    // MARK: Scripts

    /// KEYS: the members sorted set, the name key. ARGV: the name, then image digests (hex).
    /// Returns each image's ordinal. Safe to run again: members already there keep theirs.
    static let appendScript = """
        local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
        local nextOrdinal = 0
        if #last == 2 then nextOrdinal = tonumber(last[2]) + 1 end
        local out = {}
        for i = 2, #ARGV do
          local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
          if score then
            out[#out + 1] = tonumber(score)
          else
            redis.call('ZADD', KEYS[1], string.format('%.0f', nextOrdinal), ARGV[i])
            out[#out + 1] = nextOrdinal
            nextOrdinal = nextOrdinal + 1
          end
        end
        redis.call('SET', KEYS[2], ARGV[1])
        return out
        """
}
