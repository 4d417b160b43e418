import Foundation

// MARK: - Keys

/// `records` key: model fingerprint (32) + image digest (32) + codec id (1).
public struct RecordKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let model: Digest
    public let image: Digest
    public let codec: RecordCodec

    public init(model: Digest, image: Digest, codec: RecordCodec) {
        self.model = model
        self.image = image
        self.codec = codec
    }

    init?(_ raw: UnsafeRawBufferPointer) {
        guard raw.count == 65, let model = Digest(UnsafeRawBufferPointer(rebasing: raw[0..<32])),
              let image = Digest(UnsafeRawBufferPointer(rebasing: raw[32..<64])),
              let codec = RecordCodec(rawValue: raw[64]) else { return nil }
        self.init(model: model, image: image, codec: codec)
    }

    var bytes: [UInt8] { model.bytes + image.bytes + [codec.rawValue] }

    /// `<model hex>/<image hex>/<codec>`: how errors and tools name a record.
    public var description: String { "\(model.hex)/\(image.hex)/\(codec.name)" }

    public static func < (a: RecordKey, b: RecordKey) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

/// A record ready to be written: bytes made outside the write transaction.
public struct EncodedRecord: Sendable {
    public let key: RecordKey
    public let bytes: [UInt8]
}

/// One record as a scan sees it: its key, header and stored size (the checksum is not verified).
public struct RecordSummary: Sendable {
    public let key: RecordKey
    public let header: RecordHeader
    public let storedBytes: Int
}

// MARK: - Encoding against a registered model

extension KVStore {
    /// Encodes `kv` with the store's codec, checked against the registered model's shapes and
    /// rounded to its dtype. CPU-heavy; call it outside `write`.
    public func encode(_ kv: KVTensors, image: Digest, model: Digest) throws -> EncodedRecord {
        guard let descriptor = try read({ try $0.model(model) }) else {
            throw StoreError.modelNotRegistered(path: path, model: model)
        }
        return try encode(kv, image: image, descriptor: descriptor)
    }

    func encode(_ kv: KVTensors, image: Digest, descriptor: ModelDescriptor) throws -> EncodedRecord {
        if let mismatch = descriptor.mismatch(layers: kv.layers, kvHeads: kv.kvHeads, headDim: kv.headDim) {
            throw StoreError.invalidTensors(image: image, reason: mismatch)
        }
        let bytes = try RecordCoder.encode(kv, model: descriptor.fingerprint, image: image, dtype: try descriptor.valueType(), settings: codec)
        return EncodedRecord(key: RecordKey(model: descriptor.fingerprint, image: image, codec: codec.codec), bytes: bytes)
    }

    // MARK: Convenience: one transaction per call

    /// Encodes and stores one record (replacing an older one for the same model and image).
    public func put(_ kv: KVTensors, image: Digest, model: Digest) throws {
        try putBatch([(image, kv)], model: model)
    }

    /// Encodes every cache first, then writes all of them in one transaction: all or none.
    public func putBatch(_ items: [(image: Digest, kv: KVTensors)], model: Digest) throws {
        guard let descriptor = try read({ try $0.model(model) }) else {
            throw StoreError.modelNotRegistered(path: path, model: model)
        }
        let records = try items.map { try encode($0.kv, image: $0.image, descriptor: descriptor) }
        try write { txn in for record in records { try txn.put(record) } }
    }

    /// The cache of `image` made by `model`, verified; nil when there is none.
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

// MARK: - Inside a transaction

extension StoreTransaction {
    /// Stores an encoded record; its model must be registered.
    public func put(_ record: EncodedRecord) throws {
        guard try txn.get(db.models, ModelKeys.descriptor(record.key.model)) != nil else {
            throw StoreError.modelNotRegistered(path: path, model: record.key.model)
        }
        try txn.put(db.records, record.key.bytes, record.bytes)
    }

    /// The verified cache of `image` by `model` in the store's codec, or nil when there is none.
    /// A record that fails its checksum, or whose header does not name this model, image and
    /// codec and the model's shapes, is refused with `corruptRecord`, never returned.
    public func record(image: Digest, model: Digest) throws -> KVTensors? {
        try record(RecordKey(model: model, image: image, codec: store.codec.codec))?.kv
    }

    /// The verified record under `key` (any codec), with its header and stored size.
    public func record(_ key: RecordKey) throws -> (header: RecordHeader, kv: KVTensors, storedBytes: Int)? {
        guard let bytes = try txn.get(db.records, key.bytes) else { return nil }
        let (header, kv) = try decodeChecked(bytes, key: key)
        return (header, kv, bytes.count)
    }

    /// Checks a stored record completely (checksum, header against key and model, body) and decodes it.
    func decodeChecked(_ bytes: UnsafeRawBufferPointer, key: RecordKey) throws -> (RecordHeader, KVTensors) {
        do {
            let (header, kv) = try RecordCoder.decode(bytes)
            try checkHeader(header, key: key)
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

    /// Whether a record exists (not verified).
    public func hasRecord(image: Digest, model: Digest) throws -> Bool {
        try txn.get(db.records, RecordKey(model: model, image: image, codec: store.codec.codec).bytes) != nil
    }

    @discardableResult
    public func deleteRecord(image: Digest, model: Digest) throws -> Bool {
        try txn.delete(db.records, RecordKey(model: model, image: image, codec: store.codec.codec).bytes)
    }

    /// Visits record summaries (header parsed, checksum not verified) until `body` returns false.
    /// A record whose key or header cannot be parsed is reported with `corruptRecord`.
    public func scanRecords(model: Digest? = nil, _ body: (RecordSummary) throws -> Bool) throws {
        try txn.scan(db.records, prefix: model?.bytes ?? []) { k, v in
            guard let key = RecordKey(k) else {
                throw StoreError.corruptRecord(path: path, key: Digest.hexString(k), image: nil, reason: "the key is not model + image + codec")
            }
            let header: RecordHeader
            do { header = try RecordHeader.decode(v) } catch let problem as RecordProblem {
                throw StoreError.corruptRecord(path: path, key: key.description, image: key.image, reason: problem.reason)
            }
            return try body(RecordSummary(key: key, header: header, storedBytes: v.count))
        }
    }
}
