import CLMDB
import Foundation

// MARK: - Values (JSON, Schemas/store-values.schema.json)

/// `images`: what is known about an image file, keyed by the SHA-256 of its bytes.
public struct ImageInfo: Codable, Equatable, Sendable {
    public var byteCount: Int
    /// "jpeg", "png", ...
    public var format: String
    public var width: Int
    public var height: Int
    /// Every name (path or file name) the image was ingested under, first one first.
    public var sourceNames: [String]
    /// ISO 8601 time it was first ingested.
    public var firstSeen: String

    public init(byteCount: Int, format: String, width: Int, height: Int, sourceNames: [String], firstSeen: String = Date().ISO8601Format()) {
        self.byteCount = byteCount
        self.format = format
        self.width = width
        self.height = height
        self.sourceNames = sourceNames
        self.firstSeen = firstSeen
    }
}

/// `jobs`: one image waiting to be ingested (or done, or failed), so a restarted ingest resumes.
public struct IngestJob: Codable, Equatable, Sendable {
    public enum State: String, Codable, Sendable { case queued, running, done, failed }

    public var collection: String
    /// The image file as the user named it.
    public var source: String
    public var model: Digest
    public var state: State
    public var attempts: Int
    /// Known once the file has been read.
    public var imageDigest: Digest?
    /// Why the last attempt failed.
    public var error: String?
    public var enqueuedAt: String
    public var updatedAt: String

    public init(collection: String, source: String, model: Digest, state: State = .queued, attempts: Int = 0,
                imageDigest: Digest? = nil, error: String? = nil, enqueuedAt: String = Date().ISO8601Format()) {
        self.collection = collection
        self.source = source
        self.model = model
        self.state = state
        self.attempts = attempts
        self.imageDigest = imageDigest
        self.error = error
        self.enqueuedAt = enqueuedAt
        self.updatedAt = enqueuedAt
    }
}

/// A collection's name and how many images it holds.
public struct CollectionSummary: Equatable, Sendable {
    public let name: String
    public let count: Int
}

// MARK: - Keys

enum CollectionKeys {
    /// Names are UTF-8 without NUL and at most this many bytes (LMDB keys are at most 511).
    static let maximumNameBytes = 400

    /// name + 0x00 + ordinal (UInt64, big-endian, so members sort in order).
    static func member(_ name: String, _ ordinal: UInt64) -> [UInt8] { prefix(name) + bigEndian(ordinal) }
    static func prefix(_ name: String) -> [UInt8] { Array(name.utf8) + [0] }

    static func validate(_ name: String) throws {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumNameBytes, !bytes.contains(0) else {
            throw StoreError.invalidArgument("collection name '\(name)' must be 1 to \(maximumNameBytes) bytes of UTF-8 without NUL")
        }
    }

    /// Splits a member key into name and ordinal.
    static func parse(_ key: UnsafeRawBufferPointer) -> (name: String, ordinal: UInt64)? {
        guard key.count >= 10, key[key.count - 9] == 0 else { return nil }
        let name = String(decoding: key[0..<(key.count - 9)], as: UTF8.self)
        return (name, readBigEndian(UnsafeRawBufferPointer(rebasing: key[(key.count - 8)...])))
    }
}

func bigEndian(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
func readBigEndian(_ raw: UnsafeRawBufferPointer) -> UInt64 { raw.reduce(0) { $0 << 8 | UInt64($1) } }

// MARK: - Images, collections, jobs inside a transaction

extension StoreTransaction {
    public func image(_ digest: Digest) throws -> ImageInfo? {
        try decodeJSON(ImageInfo.self, db.images, "images", digest.bytes)
    }

    /// Records an image; a known one keeps its first-seen time and gains any new source names.
    @discardableResult
    public func putImage(_ digest: Digest, _ info: ImageInfo) throws -> ImageInfo {
        var merged = info
        if let existing = try image(digest) {
            merged = existing
            for name in info.sourceNames where !merged.sourceNames.contains(name) { merged.sourceNames.append(name) }
        }
        try txn.put(db.images, digest.bytes, Array(try JSONEncoder.sorted.encode(merged)))
        return merged
    }

    /// Appends images to a collection in order, skipping those already in it; returns each
    /// image's ordinal.
    @discardableResult
    public func append(_ images: [Digest], to collection: String) throws -> [UInt64] {
        try CollectionKeys.validate(collection)
        var ordinals: [Digest: UInt64] = [:]
        for (ordinal, digest) in try members(of: collection) { ordinals[digest] = ordinal }
        var next = try txn.lastKey(db.collections, prefix: CollectionKeys.prefix(collection))
            .flatMap { k in k.withUnsafeBytes { CollectionKeys.parse($0)?.ordinal } }.map { $0 + 1 } ?? 0
        return try images.map { digest in
            if let ordinal = ordinals[digest] { return ordinal }
            try txn.put(db.collections, CollectionKeys.member(collection, next), digest.bytes)
            ordinals[digest] = next
            next += 1
            return next - 1
        }
    }

    /// A collection's members in order, from `offset`, at most `limit` of them.
    public func members(of collection: String, offset: Int = 0, limit: Int = .max) throws -> [(ordinal: UInt64, image: Digest)] {
        var out: [(UInt64, Digest)] = []
        var skipped = 0
        try txn.scan(db.collections, prefix: CollectionKeys.prefix(collection)) { k, v in
            guard out.count < limit else { return false }
            guard let (_, ordinal) = CollectionKeys.parse(k), let digest = Digest(v) else {
                throw StoreError.corruptEntry(path: path, database: "collections", key: Digest.hexString(k), reason: "not name + ordinal -> 32-byte digest")
            }
            if skipped < offset { skipped += 1 } else { out.append((ordinal, digest)) }
            return true
        }
        return out
    }

    /// Every collection with its size, by name.
    public func collections() throws -> [CollectionSummary] {
        var out: [CollectionSummary] = []
        try txn.scan(db.collections) { k, _ in
            guard let (name, _) = CollectionKeys.parse(k) else {
                throw StoreError.corruptEntry(path: path, database: "collections", key: Digest.hexString(k), reason: "not name + 0 + ordinal")
            }
            if out.last?.name == name { out[out.count - 1] = CollectionSummary(name: name, count: out[out.count - 1].count + 1) }
            else { out.append(CollectionSummary(name: name, count: 1)) }
            return true
        }
        return out
    }

    /// Removes a collection's membership (its records and images stay until `gc`); returns how many
    /// members it had.
    @discardableResult
    public func removeCollection(_ name: String) throws -> Int {
        let keys = try txn.keys(db.collections, prefix: CollectionKeys.prefix(name))
        for key in keys { try txn.delete(db.collections, key) }
        return keys.count
    }

    /// Every image digest some collection refers to.
    func referencedImages() throws -> Set<Digest> {
        var out = Set<Digest>()
        try txn.scan(db.collections) { _, v in
            if let digest = Digest(v) { out.insert(digest) }
            return true
        }
        return out
    }

    // MARK: Jobs (key: id, UInt64 big-endian, in enqueue order)

    @discardableResult
    public func enqueue(_ jobs: [IngestJob]) throws -> [UInt64] {
        var next = try txn.lastKey(db.jobs, prefix: []).map { k in k.withUnsafeBytes { readBigEndian($0) } + 1 } ?? 1
        return try jobs.map { job in
            try txn.put(db.jobs, bigEndian(next), Array(try JSONEncoder.sorted.encode(job)))
            next += 1
            return next - 1
        }
    }

    public func jobs(state: IngestJob.State? = nil) throws -> [(id: UInt64, job: IngestJob)] {
        var out: [(UInt64, IngestJob)] = []
        try txn.scan(db.jobs) { k, v in
            guard k.count == 8, let job = try? JSONDecoder().decode(IngestJob.self, from: Data(v)) else {
                throw StoreError.corruptEntry(path: path, database: "jobs", key: Digest.hexString(k), reason: "not an ingest job")
            }
            if state == nil || job.state == state { out.append((readBigEndian(k), job)) }
            return true
        }
        return out
    }

    public func updateJob(_ id: UInt64, _ job: IngestJob) throws {
        var job = job
        job.updatedAt = Date().ISO8601Format()
        try txn.put(db.jobs, bigEndian(id), Array(try JSONEncoder.sorted.encode(job)))
    }

    @discardableResult
    public func removeJob(_ id: UInt64) throws -> Bool { try txn.delete(db.jobs, bigEndian(id)) }

    // MARK: JSON values

    func decodeJSON<T: Decodable>(_ type: T.Type, _ dbi: MDB_dbi, _ database: String, _ key: [UInt8]) throws -> T? {
        guard let raw = try txn.get(dbi, key) else { return nil }
        do { return try JSONDecoder().decode(T.self, from: Data(raw)) } catch {
            throw StoreError.corruptEntry(path: path, database: database, key: key.withUnsafeBytes { Digest.hexString($0) }, reason: "\(error)")
        }
    }
}
