import Foundation

// MARK: - Reads, verified

/// What a read (or write) transaction of a `CacheStore` offers: catalog entries as they are,
/// records only after verification. Shared by `StoreReader` and `StoreWriter`.
public protocol StoreReads {
    var readTransaction: any StoreReadTransaction { get }
    var store: CacheStore { get }
}

/// One read view of a store (`CacheStore.read`).
public struct StoreReader: StoreReads {
    public let readTransaction: any StoreReadTransaction
    public let store: CacheStore

    init(transaction: any StoreReadTransaction, store: CacheStore) {
        readTransaction = transaction
        self.store = store
    }
}

extension StoreReads {
    var path: String { store.location }

    // MARK: Records

    /// The verified cache of `image` by `model` in the store's codec, or nil when there is none.
    /// A record that fails its checksum, or whose header does not name this model, image and
    /// codec and the model's shapes, is refused with `corruptRecord`, never returned.
    public func record(image: Digest, model: Digest) throws -> KVTensors? {
        try record(RecordKey(model: model, image: image, codec: store.codec.codec))?.kv
    }

    /// The verified record under `key` (any codec), with its header and stored size.
    public func record(_ key: RecordKey) throws -> (header: RecordHeader, kv: KVTensors, storedBytes: Int)? {
        guard let bytes = try readTransaction.recordBytes(key) else { return nil }
        let (header, kv) = try bytes.withUnsafeBytes { try decodeChecked($0, key: key) }
        return (header, kv, bytes.count)
    }

    /// Whether a record exists (not verified).
    public func hasRecord(image: Digest, model: Digest) throws -> Bool {
        try readTransaction.hasRecord(RecordKey(model: model, image: image, codec: store.codec.codec))
    }

    /// Checks a stored record completely (checksum, header against key and model, body) and
    /// decodes it. The header is checked against the model before anything is decompressed, so
    /// a hostile header cannot make it allocate more than the model's shapes need.
    public func decodeChecked(_ bytes: UnsafeRawBufferPointer, key: RecordKey) throws -> (RecordHeader, KVTensors) {
        do {
            // The header against the key and the model first (format 2 headers are read with the
            // key's model and image, which their checksum binds): nothing is decompressed for a
            // record whose shapes are not the model's. A record relative to its model's reference
            // is decoded against the one it names.
            let parsed = try RecordHeader.decode(bytes, model: key.model, image: key.image)
            try checkHeader(parsed, key: key)
            let reference = parsed.isRelative ? try reference(named: parsed.referenceTag, key: key) : nil
            let (header, kv) = try RecordCoder.decode(bytes, model: key.model, image: key.image, reference: reference)
            return (header, kv)
        } catch let problem as RecordProblem {
            throw StoreError.corruptRecord(path: path, key: key.description, image: key.image, reason: problem.reason)
        }
    }

    /// The header must name the key's model, image and codec, and match the registered model.
    func checkHeader(_ h: RecordHeader, key: RecordKey) throws {
        guard h.model == key.model else {
            throw RecordProblem("the header names model \(h.model.hex), not the requested \(key.model.hex)")
        }
        guard h.image == key.image else { throw RecordProblem("the header names image \(h.image.hex)") }
        guard h.codec == key.codec else { throw RecordProblem("the header names codec \(h.codec.name), the key \(key.codec.name)") }
        guard !key.isReference || h.codec == ModelReference.settings.codec else {
            throw RecordProblem("a model reference must be a \(ModelReference.settings.codec.name) record, not \(h.codec.name)")
        }
        guard let descriptor = try model(key.model) else {
            throw RecordProblem("its model \(key.model.hex) is not registered in the store")
        }
        if let mismatch = descriptor.mismatch(layers: h.layers, kvHeads: h.kvHeads, headDim: h.headDim) {
            throw RecordProblem(mismatch)
        }
        guard let dtype = try? descriptor.valueType(), dtype == h.dtype else {
            throw RecordProblem("dtype \(h.dtype.name) differs from the model's \(descriptor.dtype)")
        }
    }

    /// The summary of the record under `key` (header parsed, checksum not verified), or nil
    /// when there is none: what a record holds, without decoding its body.
    public func recordSummary(_ key: RecordKey) throws -> RecordSummary? {
        guard let bytes = try readTransaction.recordBytes(key) else { return nil }
        do {
            let header = try bytes.withUnsafeBytes { try RecordHeader.decode($0, model: key.model, image: key.image) }
            return RecordSummary(key: key, header: header, storedBytes: bytes.count)
        } catch let problem as RecordProblem {
            throw StoreError.corruptRecord(path: path, key: key.description, image: key.image, reason: problem.reason)
        }
    }

    /// Visits record summaries (header parsed, checksum not verified) until `body` returns false.
    /// A record whose key or header cannot be parsed is reported with `corruptRecord`.
    public func scanRecords(model: Digest? = nil, _ body: (RecordSummary) throws -> Bool) throws {
        try readTransaction.scanRecords(model: model) { k, v in
            guard let key = RecordKey(k) else {
                throw StoreError.corruptRecord(path: path, key: Digest.hexString(k), image: nil, reason: "the key is not model + image + codec")
            }
            let header: RecordHeader
            do { header = try RecordHeader.decode(v, model: key.model, image: key.image) } catch let problem as RecordProblem {
                throw StoreError.corruptRecord(path: path, key: key.description, image: key.image, reason: problem.reason)
            }
            return try body(RecordSummary(key: key, header: header, storedBytes: v.count))
        }
    }

    // MARK: Catalog

    public func model(_ fingerprint: Digest) throws -> ModelDescriptor? { try readTransaction.model(fingerprint) }
    public func models() throws -> [ModelDescriptor] { try readTransaction.models() }
    public func image(_ digest: Digest) throws -> ImageInfo? { try readTransaction.image(digest) }
    public func collections() throws -> [CollectionSummary] { try readTransaction.collections() }
    public func collection(named name: String) throws -> CollectionSummary? { try readTransaction.collection(named: name) }

    /// A collection's members in order, from `offset`, at most `limit` of them.
    public func members(of collection: String, offset: Int = 0, limit: Int = .max) throws -> [CollectionMember] {
        guard offset >= 0, limit >= 0 else { throw StoreError.invalidArgument("offset and limit must be >= 0 (got \(offset), \(limit))") }
        return try readTransaction.members(of: collection, offset: offset, limit: limit)
    }

    public func ordinal(of image: Digest, in collection: String) throws -> UInt64? {
        try readTransaction.ordinal(of: image, in: collection)
    }
}

// MARK: - Writes

/// One write transaction of a store (`CacheStore.write`).
public struct StoreWriter: StoreReads {
    public let transaction: any StoreWriteTransaction
    public let store: CacheStore
    public var readTransaction: any StoreReadTransaction { transaction }

    init(transaction: any StoreWriteTransaction, store: CacheStore) {
        self.transaction = transaction
        self.store = store
    }

    /// Stores an encoded record; its model must be registered. A model's reference record is
    /// only put where the model has none (or the same one): it is never replaced.
    public func put(_ record: EncodedRecord) throws {
        guard try transaction.model(record.key.model) != nil else {
            throw StoreError.modelNotRegistered(path: path, model: record.key.model)
        }
        if record.key.isReference { return try putReference(record, keepingOther: false) }
        try transaction.putRecord(record.key, record.bytes)
    }

    @discardableResult
    public func deleteRecord(image: Digest, model: Digest) throws -> Bool {
        try transaction.deleteRecord(RecordKey(model: model, image: image, codec: store.codec.codec))
    }

    @discardableResult
    public func deleteRecord(_ key: RecordKey) throws -> Bool { try transaction.deleteRecord(key) }

    /// Registers a model. Registering it again is allowed when shapes and dtype are the same.
    public func register(_ descriptor: ModelDescriptor) throws {
        if let problem = descriptor.problem() {
            throw StoreError.invalidArgument("model \(descriptor.fingerprint.hex): \(problem)")
        }
        if let existing = try transaction.model(descriptor.fingerprint) {
            guard existing.mismatch(layers: descriptor.layers, kvHeads: descriptor.kvHeads, headDim: descriptor.headDim) == nil,
                  existing.dtype == descriptor.dtype else {
                throw StoreError.invalidArgument("model \(descriptor.fingerprint.hex) is already registered with other shapes or dtype; the same fingerprint cannot describe two models")
            }
            return  // the first registration stays as it was
        }
        try transaction.putModel(descriptor)
    }

    /// Records an image; a known one keeps its first-seen time and gains any new source names.
    @discardableResult
    public func putImage(_ digest: Digest, _ info: ImageInfo) throws -> ImageInfo {
        var merged = info
        if let existing = try transaction.image(digest) {
            merged = existing
            for name in info.sourceNames where !merged.sourceNames.contains(name) { merged.sourceNames.append(name) }
            if merged == existing { return existing }
        }
        try transaction.putImage(digest, merged)
        return merged
    }

    /// Appends images to a collection in order, skipping those already in it; returns each
    /// image's ordinal.
    @discardableResult
    public func append(_ images: [Digest], to collection: String) throws -> [UInt64] {
        try CollectionName.validate(collection)
        return try transaction.append(images, to: collection)
    }

    /// Removes a collection's membership (its records and images stay until `gc`); returns how
    /// many members it had.
    @discardableResult
    public func removeCollection(_ name: String) throws -> Int { try transaction.removeCollection(name) }

    @discardableResult
    public func deleteImage(_ digest: Digest) throws -> Bool { try transaction.deleteImage(digest) }
}
