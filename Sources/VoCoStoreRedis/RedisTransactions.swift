import Foundation
import VoCoStore

// MARK: - Reads (shared by read and write transactions)

protocol RedisReads: RecordReading, CatalogReading {
    var client: RedisClient { get }
    var memo: TransactionMemo { get }
    /// Called before every read of `key` (nil: of many keys): a write transaction sends the
    /// buffered puts the read would otherwise miss.
    func prepare(_ key: String?) throws
}

/// What one transaction remembers: model descriptors, which never change once registered.
final class TransactionMemo {
    var models: [Digest: ModelDescriptor?] = [:]
}

/// Values fetched per pipeline when walking many keys.
private let fetchBatch = 64

extension RedisReads {
    var keys: RedisKeys { client.keys }

    // MARK: Records

    func recordBytes(_ key: RecordKey) throws -> [UInt8]? {
        try prepare(keys.record(key))
        return try client.run("reading a record", key: keys.record(key), RedisCommand("GET", keys.record(key))).bytes
    }

    func hasRecord(_ key: RecordKey) throws -> Bool {
        try prepare(keys.record(key))
        return try client.run("looking up a record", key: keys.record(key), RedisCommand("EXISTS", keys.record(key))).integer == 1
    }

    /// SCAN of every master for the store's record keys, sorted by their `RecordKey` bytes, then
    /// the values fetched in pipelined batches. A record deleted meanwhile is left out.
    func scanRecords(model: Digest?, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        try prepare(nil)
        let found = try client.scan("listing records", matching: keys.recordPattern(model: model))
            .map { (raw: keys.rawRecordKey($0), stored: $0) }
            .sorted { $0.raw.lexicographicallyPrecedes($1.raw) }
        for start in stride(from: 0, to: found.count, by: fetchBatch) {
            let batch = found[start..<min(found.count, start + fetchBatch)]
            let values = try client.runAll("reading records", slots: batch.map { (HashSlot.of($0.stored), RedisCommand([Array("GET".utf8), $0.stored])) })
            for (entry, value) in zip(batch, values) {
                guard let bytes = value.bytes else { continue }
                let more = try entry.raw.withUnsafeBytes { k in try bytes.withUnsafeBytes { v in try body(k, v) } }
                if !more { return }
            }
        }
    }

    func recordCount() throws -> Int {
        try prepare(nil)
        return try client.scan("counting records", matching: keys.recordPattern(model: nil)).count
    }

    // MARK: Models and images

    /// Registered models are remembered by the store (a fingerprint's descriptor never changes),
    /// a missing one only for the transaction.
    func model(_ fingerprint: Digest) throws -> ModelDescriptor? {
        if let known = client.knownModel(fingerprint) { return known }
        if let asked = memo.models[fingerprint] { return asked }
        try prepare(keys.models)
        let reply = try client.run("reading a model", key: keys.models, RedisCommand("HGET", keys.models, fingerprint.hex))
        let descriptor = try client.json(ModelDescriptor.self, reply, database: "models", key: fingerprint.hex)
        memo.models[fingerprint] = descriptor
        if let descriptor { client.remember(descriptor) }
        return descriptor
    }

    func models() throws -> [ModelDescriptor] {
        try hashEntries(keys.models, "reading models").map { field, value in
            try client.json(ModelDescriptor.self, .string(value), database: "models", key: String(decoding: field, as: UTF8.self))!
        }
    }

    func image(_ digest: Digest) throws -> ImageInfo? {
        try prepare(keys.image(digest))
        let reply = try client.run("reading an image entry", key: keys.image(digest), RedisCommand("GET", keys.image(digest)))
        return try client.json(ImageInfo.self, reply, database: "images", key: digest.hex)
    }

    func cachedFileHash(identity: String) throws -> FileHashEntry? {
        try prepare(keys.fileHashes)
        let field = Digest.sha256(Array(identity.utf8)).hex
        let reply = try client.run("reading the weight-hash cache", key: keys.fileHashes, RedisCommand("HGET", keys.fileHashes, field))
        return try client.json(FileHashEntry.self, reply, database: "models", key: field)
    }

    /// A hash's fields and values, sorted by field.
    func hashEntries(_ key: String, _ operation: String) throws -> [(field: [UInt8], value: [UInt8])] {
        try prepare(key)
        let flat = try client.run(operation, key: key, RedisCommand("HGETALL", key)).elements ?? []
        return stride(from: 0, to: flat.count - 1, by: 2).map { (flat[$0].bytes ?? [], flat[$0 + 1].bytes ?? []) }
            .sorted { $0.field.lexicographicallyPrecedes($1.field) }
    }

    // MARK: Collections

    /// Every collection's name key (a SCAN), its name and its size; empty ones left out.
    func collections() throws -> [CollectionSummary] {
        try prepare(nil)
        let nameKeys = try client.scan("listing collections", matching: keys.collectionNamePattern)
        var out: [CollectionSummary] = []
        for start in stride(from: 0, to: nameKeys.count, by: fetchBatch) {
            let batch = nameKeys[start..<min(nameKeys.count, start + fetchBatch)]
            let replies = try client.runAll("listing collections", slots: batch.flatMap { key in
                [(HashSlot.of(key), RedisCommand([Array("GET".utf8), key])), (HashSlot.of(key), RedisCommand([Array("ZCARD".utf8), keys.membersKey(ofNameKey: key)]))]
            })
            for i in batch.indices.map({ $0 - start }) {
                guard let name = replies[2 * i].text, let count = replies[2 * i + 1].integer, count > 0 else { continue }
                out.append(CollectionSummary(name: name, count: Int(count)))
            }
        }
        return out.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
    }

    func collection(named name: String) throws -> CollectionSummary? {
        try prepare(keys.members(name))
        let count = try client.run("reading a collection", key: keys.members(name), RedisCommand("ZCARD", keys.members(name))).integer ?? 0
        return count == 0 ? nil : CollectionSummary(name: name, count: Int(count))
    }

    func members(of collection: String, offset: Int, limit: Int) throws -> [CollectionMember] {
        try rankedMembers(keys.members(collection), offset: offset, limit: limit).map { member, score in
            guard let image = Digest(hex: String(decoding: member, as: UTF8.self)), let ordinal = Self.ordinal(score) else {
                throw client.corrupt("collections", "\(collection)/\(String(decoding: member.prefix(64), as: UTF8.self))", "not image digest hex -> integer ordinal")
            }
            return CollectionMember(ordinal: ordinal, image: image)
        }
    }

    /// A sorted set's members and scores by rank (ZRANGE), from `offset`, at most `limit`, in
    /// pages of 10,000 (ranks of earlier members never change: appends only add at the end).
    func rankedMembers(_ key: String, offset: Int, limit: Int) throws -> [(member: [UInt8], score: String)] {
        try prepare(key)
        var out: [(member: [UInt8], score: String)] = []
        var start = offset
        while out.count < limit, start < Int.max {
            let page = min(limit - out.count, 10_000)
            let stop = start > Int.max - page ? Int.max : start + page - 1
            let flat = try client.run("reading a collection", key: key, RedisCommand("ZRANGE", key, start, stop, "WITHSCORES")).elements ?? []
            for i in stride(from: 0, to: flat.count - 1, by: 2) { out.append((flat[i].bytes ?? [], flat[i + 1].text ?? "")) }
            if flat.count < 2 * page { break }
            start = stop + 1
        }
        return out
    }

    func ordinal(of image: Digest, in collection: String) throws -> UInt64? {
        let key = keys.members(collection)
        try prepare(key)
        guard let score = try client.run("reading a collection", key: key, RedisCommand("ZSCORE", key, image.hex)).text else { return nil }
        guard let ordinal = Self.ordinal(score) else { throw client.corrupt("members", "\(collection)/\(image.hex)", "score \(score) is not an ordinal") }
        return ordinal
    }

    /// A sorted-set score that is a whole number >= 0.
    static func ordinal(_ score: String) -> UInt64? {
        if let n = UInt64(score) { return n }
        guard let d = Double(score), d >= 0, d < 0x1p63, d == d.rounded() else { return nil }
        return UInt64(d)
    }

    // MARK: Raw scans for verify

    func scanCatalog(_ namespace: CatalogNamespace, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        try prepare(nil)
        for (key, value) in try catalogEntries(namespace) {
            let more = try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try body(k, v) } }
            if !more { return }
        }
    }

    func count(_ namespace: CatalogNamespace) throws -> Int {
        try prepare(nil)
        switch namespace {
        case .images: return try client.scan("counting images", matching: keys.imagePrefix + "*").count
        case .models:
            return try client.runAll("counting models", [(keys.models, RedisCommand("HLEN", keys.models)), (keys.fileHashes, RedisCommand("HLEN", keys.fileHashes))])
                .reduce(0) { $0 + Int($1.integer ?? 0) }
        case .collections, .members: return try collections().reduce(0) { $0 + $1.count }
        }
    }

    /// A namespace's entries in the LMDB layout of Schemas/store-format.md (what verify parses):
    /// images digest -> JSON; models 01 + fingerprint / 02 + identity hash -> JSON; collections
    /// name 00 ordinal -> digest; members name 00 digest -> ordinal. Keys that do not parse keep
    /// their raw bytes, so that verify reports them.
    func catalogEntries(_ namespace: CatalogNamespace) throws -> [([UInt8], [UInt8])] {
        switch namespace {
        case .images:
            let found = try client.scan("listing images", matching: keys.imagePrefix + "*")
            var out: [([UInt8], [UInt8])] = []
            for start in stride(from: 0, to: found.count, by: fetchBatch) {
                let batch = Array(found[start..<min(found.count, start + fetchBatch)])
                let values = try client.runAll("reading images", slots: batch.map { (HashSlot.of($0), RedisCommand([Array("GET".utf8), $0])) })
                for (key, value) in zip(batch, values) {
                    guard let bytes = value.bytes else { continue }
                    let rest = Array(key.dropFirst(keys.imagePrefix.utf8.count))
                    out.append((Digest(hex: String(decoding: rest, as: UTF8.self))?.bytes ?? rest, bytes))
                }
            }
            return out
        case .models:
            let kinds: [(UInt8, String)] = [(1, keys.models), (2, keys.fileHashes)]
            return try kinds.flatMap { kind, key in
                try hashEntries(key, "listing models").map { field, value in
                    ([kind] + (Digest(hex: String(decoding: field, as: UTF8.self))?.bytes ?? field), value)
                }
            }
        case .collections, .members:
            var out: [([UInt8], [UInt8])] = []
            for summary in try collections() {
                let prefix = Array(summary.name.utf8) + [0]
                for (member, score) in try rankedMembers(keys.members(summary.name), offset: 0, limit: .max) {
                    let ordinal = Self.ordinal(score).map(bigEndianBytes) ?? Array(score.utf8)
                    let image = Digest(hex: String(decoding: member, as: UTF8.self))?.bytes ?? member
                    out.append(namespace == .collections ? (prefix + ordinal, image) : (prefix + image, ordinal))
                }
            }
            return out
        }
    }
}

struct RedisReadTransaction: RedisReads {
    let client: RedisClient
    let memo = TransactionMemo()
    func prepare(_ key: String?) throws {}
}
