import Foundation

// MARK: - Options

/// How a store is opened, whatever its backend.
public struct StoreOptions: Sendable {
    /// No writes: for inspection and query processes (LMDB: MDB_RDONLY).
    public var readOnly = false
    /// Create an empty store when there is none.
    public var create = false
    /// The codec of a new store (default shuffle-zstd, level 3). For an existing store it must
    /// match what the store was created with, or be nil.
    public var codec: CodecSettings?

    public init(readOnly: Bool = false, create: Bool = false, codec: CodecSettings? = nil) {
        self.readOnly = readOnly
        self.create = create
        self.codec = codec
    }
}

// MARK: - The store

/// A VoCo cache store over any backend: records are encoded with the store's codec, and every
/// record read is verified (checksum, header against its key, shapes and dtype against the
/// registered model) before it is served. Ingest, query and inspect code talk to this class
/// only, never to a backend. Safe to share between threads.
public final class CacheStore: @unchecked Sendable {
    public let backend: any StoreBackend
    /// Model references verified so far (StoreReferences.swift).
    let references = ReferenceCache()

    public init(backend: any StoreBackend) {
        self.backend = backend
    }

    /// How the user named the store; errors name it.
    public var location: String { backend.location }
    /// The codec every new record is written with.
    public var codec: CodecSettings { backend.codec }
    public var isReadOnly: Bool { backend.isReadOnly }
    public var jobs: any JobQueue { backend.jobs }

    /// Runs `body` on one consistent view (see `StoreBackend.read`). Everything the reader
    /// returns is a copy, valid after `body`. Do not call `read` or `write` inside `body`.
    public func read<T>(_ body: (StoreReader) throws -> T) throws -> T {
        try backend.read { try body(StoreReader(transaction: $0, store: self)) }
    }

    /// Runs `body` as one write transaction (see `StoreBackend.write`): it may run more than
    /// once, so encode records before calling (`encode`) and have no effects outside it.
    @discardableResult
    public func write<T>(_ body: (StoreWriter) throws -> T) throws -> T {
        guard !isReadOnly else { throw StoreError.readOnly(path: location) }
        return try backend.write { try body(StoreWriter(transaction: $0, store: self)) }
    }

    // MARK: Encoding

    /// Encodes `kv` with the store's codec, checked against the model's shapes and rounded to
    /// its dtype. CPU-heavy; call it outside `write`.
    public func encode(_ kv: KVTensors, image: Digest, model descriptor: ModelDescriptor) throws -> EncodedRecord {
        if let mismatch = descriptor.mismatch(layers: kv.layers, kvHeads: kv.kvHeads, headDim: kv.headDim) {
            throw StoreError.invalidTensors(image: image, reason: mismatch)
        }
        // A relative codec: against the model's reference, or self-contained at 8 bits until the
        // store holds the records the reference is made of (StoreReferences.swift).
        let reference = codec.relative ? try referenceForWriting(descriptor) : nil
        let bytes = try RecordCoder.encode(kv, model: descriptor.fingerprint, image: image, dtype: try descriptor.valueType(),
                                           settings: codec.relative && reference == nil ? codec.calibration : codec, reference: reference)
        return EncodedRecord(key: RecordKey(model: descriptor.fingerprint, image: image, codec: codec.codec), bytes: bytes)
    }

    /// Encodes against a registered model (looked up in its own read).
    public func encode(_ kv: KVTensors, image: Digest, model: Digest) throws -> EncodedRecord {
        guard let descriptor = try read({ try $0.model(model) }) else {
            throw StoreError.modelNotRegistered(path: location, model: model)
        }
        return try encode(kv, image: image, model: descriptor)
    }

    // MARK: Convenience: one transaction per call

    public func register(_ descriptor: ModelDescriptor) throws {
        try write { try $0.register(descriptor) }
    }

    /// Encodes and stores one record (replacing an older one for the same model and image).
    public func put(_ kv: KVTensors, image: Digest, model: Digest) throws {
        try putBatch([(image, kv)], model: model)
    }

    /// Encodes every cache first, then writes all of them in one transaction: all or none.
    public func putBatch(_ items: [(image: Digest, kv: KVTensors)], model: Digest) throws {
        guard let descriptor = try read({ try $0.model(model) }) else {
            throw StoreError.modelNotRegistered(path: location, model: model)
        }
        let records = try items.map { try encode($0.kv, image: $0.image, model: descriptor) }
        try write { txn in for record in records { try txn.put(record) } }
    }

    /// The verified cache of `image` made by `model`; nil when there is none.
    public func get(image: Digest, model: Digest) throws -> KVTensors? {
        try read { try $0.record(image: image, model: model) }
    }

    @discardableResult
    public func delete(image: Digest, model: Digest) throws -> Bool {
        try write { try $0.deleteRecord(image: image, model: model) }
    }

    /// Visits record summaries in key order (all models, or one).
    public func scan(model: Digest? = nil, _ body: (RecordSummary) throws -> Void) throws {
        try read { txn in try txn.scanRecords(model: model) { try body($0); return true } }
    }
}
