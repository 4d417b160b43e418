import Foundation

// MARK: - What a backend implements: records, catalog, job queue
//
// The store's logic (codecs, checksums, the model check on every read, stats, verify, gc) lives
// in `CacheStore` and works over these protocols, so a backend only keeps bytes and entries.
// LMDB (VoCoStoreLMDB) implements them with one environment: every read transaction is one
// snapshot and every write transaction is atomic. A backend without multi-key transactions
// (a cluster) runs the calls of a `write` body in the order they are made, and must make each
// single call atomic on its own (`append` above all); callers order their writes so that a crash
// between two calls leaves only garbage that `gc` removes (a record without membership), never a
// membership without its record.

/// Reads of records. Values are the stored bytes, unverified: `CacheStore` checks them.
public protocol RecordReading {
    func recordBytes(_ key: RecordKey) throws -> [UInt8]?
    func hasRecord(_ key: RecordKey) throws -> Bool
    /// Visits stored records in key order (all, or those of one model), raw key and bytes (valid
    /// only during the call), until `body` returns false. Keys that are not a `RecordKey` are
    /// visited too, so that verify can report them.
    func scanRecords(model: Digest?, _ body: (_ key: UnsafeRawBufferPointer, _ bytes: UnsafeRawBufferPointer) throws -> Bool) throws
    /// How many entries the records namespace holds.
    func recordCount() throws -> Int
}

/// Writes of records: immutable values under their key (a put replaces the same key's bytes).
public protocol RecordWriting: RecordReading {
    func putRecord(_ key: RecordKey, _ bytes: [UInt8]) throws
    @discardableResult func deleteRecord(_ key: RecordKey) throws -> Bool
    /// Deletes an entry of the records namespace by its raw key (a key that does not parse).
    @discardableResult func deleteRawRecord(_ key: [UInt8]) throws -> Bool
    /// Deletes many (gc); returns how many existed. A backend with round trips sends them together.
    @discardableResult func deleteRawRecords(_ keys: [[UInt8]]) throws -> Int
    /// Puts a record only where its key holds none; returns whether it did. Used for model
    /// references, which are never replaced. The default checks, then puts: atomic inside an
    /// LMDB write transaction; a backend whose writes are call by call (a cluster) overrides it
    /// with an atomic put-if-absent (Redis: SET NX).
    func putRecordIfAbsent(_ key: RecordKey, _ bytes: [UInt8]) throws -> Bool
}

extension RecordWriting {
    public func deleteRawRecords(_ keys: [[UInt8]]) throws -> Int {
        try keys.reduce(0) { $0 + (try deleteRawRecord($1) ? 1 : 0) }
    }

    public func putRecordIfAbsent(_ key: RecordKey, _ bytes: [UInt8]) throws -> Bool {
        if try hasRecord(key) { return false }
        try putRecord(key, bytes)
        return true
    }
}

/// Reads of the catalog: models, images, collections, and the weight-hash cache.
public protocol CatalogReading {
    func model(_ fingerprint: Digest) throws -> ModelDescriptor?
    func models() throws -> [ModelDescriptor]
    func image(_ digest: Digest) throws -> ImageInfo?
    /// Every collection with its size, by name (bytewise UTF-8 order).
    func collections() throws -> [CollectionSummary]
    func collection(named name: String) throws -> CollectionSummary?
    /// A collection's members in ordinal order: skip `offset`, at most `limit`.
    func members(of collection: String, offset: Int, limit: Int) throws -> [CollectionMember]
    /// The ordinal of `image` in `collection`, or nil when it is not a member.
    func ordinal(of image: Digest, in collection: String) throws -> UInt64?
    func cachedFileHash(identity: String) throws -> FileHashEntry?

    /// Raw scans for verify: every entry of a namespace, valid only during the call.
    func scanCatalog(_ namespace: CatalogNamespace, _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws
    /// How many entries a namespace holds, as the backend counts them.
    func count(_ namespace: CatalogNamespace) throws -> Int
}

/// Writes of the catalog.
public protocol CatalogWriting: CatalogReading {
    func putModel(_ descriptor: ModelDescriptor) throws
    func putImage(_ digest: Digest, _ info: ImageInfo) throws
    @discardableResult func deleteImage(_ digest: Digest) throws -> Bool
    /// Deletes many image entries (gc); returns how many existed.
    @discardableResult func deleteImages(_ digests: [Digest]) throws -> Int
    /// Appends images to a collection in the given order, skipping those already in it (and
    /// repeats within `images`); returns each image's ordinal. Atomic on every backend: two
    /// writers appending to one collection never duplicate an image or reuse an ordinal.
    @discardableResult func append(_ images: [Digest], to collection: String) throws -> [UInt64]
    /// Removes a collection's membership; returns how many members it had.
    @discardableResult func removeCollection(_ name: String) throws -> Int
    func cacheFileHash(_ entry: FileHashEntry) throws
    /// Deletes one raw entry of a namespace (for repairing what verify found).
    @discardableResult func deleteRawEntry(_ namespace: CatalogNamespace, key: [UInt8]) throws -> Bool
}

extension CatalogWriting {
    public func deleteImages(_ digests: [Digest]) throws -> Int {
        try digests.reduce(0) { $0 + (try deleteImage($1) ? 1 : 0) }
    }
}

/// The catalog's namespaces (LMDB: named databases), as verify and stats see them.
public enum CatalogNamespace: String, CaseIterable, Sendable {
    case images, collections, members, models
}

public typealias StoreReadTransaction = RecordReading & CatalogReading
public typealias StoreWriteTransaction = RecordWriting & CatalogWriting

/// A store backend: transactions over records and catalog, and a job queue.
public protocol StoreBackend: AnyObject, Sendable {
    /// How the user named the store (a directory, a URL); errors name it.
    var location: String { get }
    var isReadOnly: Bool { get }
    /// The codec of new records (chosen when the store was created).
    var codec: CodecSettings { get }
    var jobs: any JobQueue { get }

    /// Runs `body` on one consistent view where the backend has snapshots (LMDB), else on
    /// reads as they come. What `body` gets is valid only inside it.
    func read<T>(_ body: (any StoreReadTransaction) throws -> T) throws -> T
    /// Runs `body` as one atomic transaction where the backend has them (LMDB), else call by
    /// call in order. `body` may run more than once (LMDB retries after growing a full map),
    /// so it must have no effects outside the transaction.
    func write<T>(_ body: (any StoreWriteTransaction) throws -> T) throws -> T

    /// Problems only the backend can see (its own entry counts, structure); empty when none.
    func checkStructure() throws -> [VerifyFailure]
    /// Sizes as the backend reports them, for stats (e.g. LMDB's map size and bytes used).
    func storageFigures() -> [String: Int]
    /// The backend `verify` walks: one that reports damage instead of crashing on it (LMDB:
    /// its own pages read by a checking reader). By default the backend itself.
    func verifyingBackend() throws -> any StoreBackend
}

extension StoreBackend {
    public func checkStructure() throws -> [VerifyFailure] { [] }
    public func storageFigures() -> [String: Int] { [:] }
    public func verifyingBackend() throws -> any StoreBackend { self }
}

// MARK: - The ingest job queue

/// A job's id: decimal for LMDB, a stream entry id for Redis.
public struct JobID: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public init(from decoder: Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    /// Numeric ids (LMDB's `12`, a stream's `1700000000000-3`) sort as numbers, part by part;
    /// others bytewise.
    public static func < (a: JobID, b: JobID) -> Bool {
        if let x = a.numericParts, let y = b.numericParts { return x.lexicographicallyPrecedes(y) }
        return a.rawValue < b.rawValue
    }

    private var numericParts: [UInt64]? {
        let parts = rawValue.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        let numbers = parts.compactMap { $0.allSatisfy(\.isASCII) ? UInt64($0) : nil }
        return numbers.count == parts.count ? numbers : nil
    }
}

/// A job a worker holds until its lease ends.
public struct ClaimedJob: Sendable, Equatable {
    public var id: JobID
    public var job: IngestJob

    public init(id: JobID, job: IngestJob) {
        self.id = id
        self.job = job
    }
}

/// How a claimed job ended.
public struct JobOutcome: Sendable, Equatable {
    public var id: JobID
    /// `.done` or `.failed`.
    public var state: IngestJob.State
    public var imageDigest: Digest?
    public var error: String?

    public init(id: JobID, state: IngestJob.State, imageDigest: Digest? = nil, error: String? = nil) {
        self.id = id
        self.state = state
        self.imageDigest = imageDigest
        self.error = error
    }
}

/// Jobs per state.
public struct JobCounts: Codable, Equatable, Sendable {
    public var queued = 0, running = 0, done = 0, failed = 0
    public init() {}
    /// Waiting or in progress: what a full queue is measured by.
    public var pending: Int { queued + running }
    public var total: Int { queued + running + done + failed }
}

/// The ingest queue: accepted means durable. A claim leases jobs to one worker; a lease that
/// ends without `finish` or `release` (the worker died) makes the job claimable again, with
/// its attempt count raised. Jobs are idempotent (an image already stored is only added to its
/// collection), so a job done twice after a crash does no harm.
public protocol JobQueue: AnyObject, Sendable {
    @discardableResult func enqueue(_ jobs: [IngestJob]) throws -> [JobID]
    /// Up to `limit` jobs, oldest first: queued ones, and running ones whose lease ended.
    func claim(worker: String, limit: Int, lease: TimeInterval) throws -> [ClaimedJob]
    /// Extends the lease of jobs this worker still holds; returns the ids it no longer holds.
    @discardableResult func renew(_ ids: [JobID], worker: String, lease: TimeInterval) throws -> [JobID]
    /// Records outcomes of jobs this worker holds; a job whose lease another worker took over
    /// is left to that worker (returned).
    @discardableResult func finish(_ outcomes: [JobOutcome], worker: String) throws -> [JobID]
    /// Gives jobs back to the queue unfinished (a worker shutting down).
    func release(_ ids: [JobID], worker: String) throws
    func job(_ id: JobID) throws -> IngestJob?
    /// Jobs in id order (of one collection, or all), after `after`, at most `limit`.
    func jobs(collection: String?, after: JobID?, limit: Int) throws -> [(id: JobID, job: IngestJob)]
    func counts() throws -> JobCounts
}
