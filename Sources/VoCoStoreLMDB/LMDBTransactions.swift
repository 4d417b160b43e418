import CLMDB
import Foundation
import VoCoStore

// MARK: - Key layouts (Schemas/store-format.md)

enum CollectionKeys {
    /// collections: name + 0x00 + ordinal (UInt64, big-endian, so members sort in order).
    static func member(_ name: String, _ ordinal: UInt64) -> [UInt8] { prefix(name) + bigEndianBytes(ordinal) }
    /// members: name + 0x00 + image digest -> ordinal (the index that makes `append` skip members).
    static func index(_ name: String, _ image: Digest) -> [UInt8] { prefix(name) + image.bytes }
    static func prefix(_ name: String) -> [UInt8] { Array(name.utf8) + [0] }

    /// Splits a `collections` key into name and ordinal.
    static func parse(_ key: UnsafeRawBufferPointer) -> (name: String, ordinal: UInt64)? {
        guard key.count >= 10, key[key.count - 9] == 0 else { return nil }
        let name = String(decoding: key[0..<(key.count - 9)], as: UTF8.self)
        return (name, readBigEndian(UnsafeRawBufferPointer(rebasing: key[(key.count - 8)...])))
    }
}

/// `models` holds two kinds of keys, told apart by their first byte.
enum ModelKeys {
    static func descriptor(_ fingerprint: Digest) -> [UInt8] { [1] + fingerprint.bytes }
    static func fileHash(identity: String) -> [UInt8] { [2] + Digest.sha256(Array(identity.utf8)).bytes }
}

// MARK: - Reads (shared by read and write transactions)

protocol LMDBReads: RecordReading, CatalogReading {
    var txn: any LMDBKeyValueReads { get }
    var db: LMDBStore.Databases { get }
    /// Decoded image entries kept across transactions (read transactions only: a writer's
    /// process, the ingester, should not grow with the images it has seen).
    var imageMemo: DecodedJSONMemo<ImageInfo>? { get }
}

extension LMDBReads {
    var path: String { txn.path }

    // MARK: Records

    func recordBytes(_ key: RecordKey) throws -> [UInt8]? { try txn.getCopy(db.records, key.bytes) }
    func hasRecord(_ key: RecordKey) throws -> Bool { try txn.contains(db.records, key.bytes) }
    func recordCount() throws -> Int { try txn.count(db.records) }

    func scanRecords(model: Digest?, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        try txn.scan(db.records, prefix: model?.bytes ?? [], body)
    }

    // MARK: Catalog

    func model(_ fingerprint: Digest) throws -> ModelDescriptor? {
        try decodeJSON(ModelDescriptor.self, db.models, "models", ModelKeys.descriptor(fingerprint))
    }

    func models() throws -> [ModelDescriptor] {
        var out: [ModelDescriptor] = []
        try txn.scan(db.models, prefix: [1]) { k, v in
            let json = try db.open(v, key: k, database: "models", path: path)
            guard let descriptor = try? JSONDecoder().decode(ModelDescriptor.self, from: Data(json)) else {
                throw StoreError.corruptEntry(path: path, database: "models", key: Digest.hexString(k), reason: "not a model descriptor")
            }
            out.append(descriptor)
            return true
        }
        return out
    }

    func image(_ digest: Digest) throws -> ImageInfo? {
        try decodeJSON(ImageInfo.self, db.images, "images", digest.bytes, memo: imageMemo)
    }

    func collections() throws -> [CollectionSummary] {
        var out: [CollectionSummary] = []
        var start: [UInt8] = []
        // One seek per collection: count its members, then jump past its prefix.
        while let first = try txn.firstKey(db.collections, atOrAfter: start) {
            guard let (name, _) = first.withUnsafeBytes({ CollectionKeys.parse($0) }) else {
                throw StoreError.corruptEntry(path: path, database: "collections", key: first.withUnsafeBytes { Digest.hexString($0) }, reason: "not name + 0 + ordinal")
            }
            let prefix = CollectionKeys.prefix(name)
            out.append(CollectionSummary(name: name, count: try countMembers(prefix)))
            start = Array(name.utf8) + [1]
        }
        return out
    }

    func collection(named name: String) throws -> CollectionSummary? {
        let count = try countMembers(CollectionKeys.prefix(name))
        return count == 0 ? nil : CollectionSummary(name: name, count: count)
    }

    private func countMembers(_ prefix: [UInt8]) throws -> Int {
        var count = 0
        try txn.scan(db.collections, prefix: prefix) { _, _ in count += 1; return true }
        return count
    }

    func members(of collection: String, offset: Int, limit: Int) throws -> [CollectionMember] {
        var out: [CollectionMember] = []
        var skipped = 0
        guard limit > 0 else { return [] }
        try txn.scan(db.collections, prefix: CollectionKeys.prefix(collection)) { k, v in
            guard let (_, ordinal) = CollectionKeys.parse(k), let digest = Digest(v) else {
                throw StoreError.corruptEntry(path: path, database: "collections", key: Digest.hexString(k), reason: "not name + ordinal -> 32-byte digest")
            }
            if skipped < offset { skipped += 1; return true }
            out.append(CollectionMember(ordinal: ordinal, image: digest))
            return out.count < limit
        }
        return out
    }

    func ordinal(of image: Digest, in collection: String) throws -> UInt64? {
        guard let raw = try txn.getCopy(db.members, CollectionKeys.index(collection, image)) else { return nil }
        guard raw.count == 8 else {
            throw StoreError.corruptEntry(path: path, database: "members", key: "\(collection)/\(image.hex)", reason: "not an 8-byte ordinal")
        }
        return raw.withUnsafeBytes { readBigEndian($0) }
    }

    func cachedFileHash(identity: String) throws -> FileHashEntry? {
        try decodeJSON(FileHashEntry.self, db.models, "models", ModelKeys.fileHash(identity: identity))
    }

    /// Sealed values (`images`, `models`) are passed without their checksum; one that fails it
    /// is skipped here (verify reports it from `LMDBStructureCheck`).
    func scanCatalog(_ namespace: CatalogNamespace, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        let sealed = db.sealed && (namespace == .images || namespace == .models)
        try txn.scan(dbi(namespace)) { k, v in
            guard sealed else { return try body(k, v) }
            guard case let .success(value) = ValueSeal.open(v, key: k) else { return true }
            return try body(k, value)
        }
    }

    func count(_ namespace: CatalogNamespace) throws -> Int { try txn.count(dbi(namespace)) }

    func dbi(_ namespace: CatalogNamespace) -> MDB_dbi {
        switch namespace {
        case .images: return db.images
        case .collections: return db.collections
        case .members: return db.members
        case .models: return db.models
        }
    }

    /// The JSON value under `key` of a sealed database, checksum checked, decoded (through
    /// `memo` when given: the same JSON text decodes to the same value).
    func decodeJSON<T: Decodable>(_ type: T.Type, _ dbi: MDB_dbi, _ database: String, _ key: [UInt8],
                                  memo: DecodedJSONMemo<T>? = nil) throws -> T? {
        try txn.withValue(dbi, key) { raw -> T? in
            guard let raw else { return nil }
            let json = Data(try key.withUnsafeBytes { try db.open(raw, key: $0, database: database, path: path) })
            if let memo, let known = memo.value(for: json) { return known }
            do {
                let value = try JSONDecoder().decode(T.self, from: json)
                memo?.insert(value, for: json)
                return value
            } catch {
                throw StoreError.corruptEntry(path: path, database: database, key: key.withUnsafeBytes { Digest.hexString($0) }, reason: "\(error)")
            }
        }
    }
}

/// Decoded values by their exact JSON text, bounded in bytes: a question over a collection
/// reads every member's image entry, and JSONDecoder costs tens of microseconds per entry,
/// far more than hashing its ~200 bytes. Keyed by the text itself (after the checksum check),
/// so a changed entry is decoded again and no answer depends on what was read before.
final class DecodedJSONMemo<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Data: T] = [:]
    private var textBytes = 0
    /// The bound on the JSON text held (all of it is dropped when a new entry would pass it);
    /// an entry longer than a sixteenth of it is never kept.
    let capacityBytes: Int

    init(capacityBytes: Int) { self.capacityBytes = capacityBytes }

    func value(for json: Data) -> T? { lock.withLock { values[json] } }

    func insert(_ value: T, for json: Data) {
        guard json.count <= capacityBytes / 16 else { return }
        lock.withLock {
            if textBytes + json.count > capacityBytes {
                values.removeAll(keepingCapacity: true)
                textBytes = 0
            }
            if values.updateValue(value, forKey: json) == nil { textBytes += json.count }
        }
    }
}

/// Image entries read by the read transactions of every LMDB store in the process: 4 MiB of
/// their JSON text (about 20,000 entries of the usual ~200 bytes; an image ingested under many
/// names, or a hostile entry, only fills it sooner), decoded values of the same order.
enum ImageInfoMemo {
    static let shared = DecodedJSONMemo<ImageInfo>(capacityBytes: 4 << 20)
}

struct LMDBReadTransaction: LMDBReads {
    let txn: any LMDBKeyValueReads
    let db: LMDBStore.Databases
    var imageMemo: DecodedJSONMemo<ImageInfo>? { ImageInfoMemo.shared }
}

// MARK: - Writes

struct LMDBWriteTransaction: LMDBReads, RecordWriting, CatalogWriting {
    let write: Transaction
    let db: LMDBStore.Databases
    var txn: any LMDBKeyValueReads { write }
    var imageMemo: DecodedJSONMemo<ImageInfo>? { nil }

    init(txn: Transaction, db: LMDBStore.Databases) {
        write = txn
        self.db = db
    }

    func putRecord(_ key: RecordKey, _ bytes: [UInt8]) throws { try write.put(db.records, key.bytes, bytes) }
    func deleteRecord(_ key: RecordKey) throws -> Bool { try write.delete(db.records, key.bytes) }
    func deleteRawRecord(_ key: [UInt8]) throws -> Bool { try write.delete(db.records, key) }

    func putModel(_ descriptor: ModelDescriptor) throws {
        try write.putSealed(db.models, ModelKeys.descriptor(descriptor.fingerprint), try JSONEncoder.sortedKeys.encode(descriptor))
    }

    func putImage(_ digest: Digest, _ info: ImageInfo) throws {
        try write.putSealed(db.images, digest.bytes, try JSONEncoder.sortedKeys.encode(info))
    }

    func deleteImage(_ digest: Digest) throws -> Bool { try write.delete(db.images, digest.bytes) }

    func append(_ images: [Digest], to collection: String) throws -> [UInt64] {
        var next = try write.lastKey(db.collections, prefix: CollectionKeys.prefix(collection))
            .flatMap { k in k.withUnsafeBytes { CollectionKeys.parse($0)?.ordinal } }.map { $0 + 1 } ?? 0
        return try images.map { digest in
            if let ordinal = try ordinal(of: digest, in: collection) { return ordinal }
            try write.put(db.collections, CollectionKeys.member(collection, next), digest.bytes)
            try write.put(db.members, CollectionKeys.index(collection, digest), bigEndianBytes(next))
            next += 1
            return next - 1
        }
    }

    func removeCollection(_ name: String) throws -> Int {
        let prefix = CollectionKeys.prefix(name)
        let keys = try write.keys(db.collections, prefix: prefix)
        for key in keys { try write.delete(db.collections, key) }
        for key in try write.keys(db.members, prefix: prefix) { try write.delete(db.members, key) }
        return keys.count
    }

    func cacheFileHash(_ entry: FileHashEntry) throws {
        try write.putSealed(db.models, ModelKeys.fileHash(identity: entry.identity), try JSONEncoder.sortedKeys.encode(entry))
    }

    func deleteRawEntry(_ namespace: CatalogNamespace, key: [UInt8]) throws -> Bool { try write.delete(dbi(namespace), key) }
}

// MARK: - Sealed values

extension LMDBStore.Databases {
    /// A value of a sealed database without its checksum (schema 3); as it is in a schema-2 store.
    func open(_ raw: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer, database: String, path: String) throws -> UnsafeRawBufferPointer {
        guard sealed else { return raw }
        switch ValueSeal.open(raw, key: key) {
        case let .success(value): return value
        case let .failure(problem):
            throw StoreError.corruptEntry(path: path, database: database, key: Digest.hexString(key), reason: problem.reason)
        }
    }
}

extension Transaction {
    /// Puts `value` followed by its checksum (ValueSeal).
    func putSealed(_ db: MDB_dbi, _ key: [UInt8], _ value: Data) throws {
        try put(db, key, ValueSeal.seal(Array(value), key: key))
    }
}
