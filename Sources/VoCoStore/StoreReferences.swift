import Foundation

// MARK: - Model references in a store (ModelReference.swift)
//
// A store whose codec is `relative` (`hq:...,ref=N`) keeps one reference record per model, under
// `ModelReference.key(model:)`: the mean of the model's first N records, which are written
// self-contained at 8 bits; it is stored once, when the store first holds N of them, and never
// replaced. Every later record of that model is stored relative to it and binds its digest.
// Records of other codecs, and self-contained hq records, are read as they always were.

/// Verified references, by model fingerprint. A reference never changes once records use it,
/// so a reader keeps the one it verified; a record that names another one (its header's tag)
/// makes the reader look in the store again before refusing it.
final class ReferenceCache: @unchecked Sendable {
    private var references: [Digest: ModelReference] = [:]
    private let lock = NSLock()

    subscript(model: Digest) -> ModelReference? {
        get { lock.withLock { references[model] } }
        set { lock.withLock { references[model] = newValue } }
    }
}

extension CacheStore {
    /// `model`'s verified reference, or nil when the store holds none (cached after the first read).
    public func reference(model: Digest) throws -> ModelReference? {
        if let cached = references[model] { return cached }
        return try read { try $0.reference(model: model) }
    }

    /// The reference a new record of `descriptor`'s model is encoded against: the stored one;
    /// else, once the store holds N verified records of the model in its codec with the model's
    /// rows per image (`codec.referenceImages`, the first N in key order), their mean, stored
    /// now as the model's reference; else nil, and the record is written self-contained
    /// (`codec.calibration`). A reference another writer stored first is kept and used.
    func referenceForWriting(_ descriptor: ModelDescriptor) throws -> ModelReference? {
        let model = descriptor.fingerprint
        if let stored = try reference(model: model) { return stored }
        guard !isReadOnly else { return nil }
        let needed = codec.referenceImages
        let calibration = try read { txn in
            var found: [KVTensors] = []
            try txn.readTransaction.scanRecords(model: model) { k, v in
                guard let key = RecordKey(k), !key.isReference, key.codec == codec.codec,
                      let (header, kv) = try? txn.decodeChecked(v, key: key),
                      !header.isRelative, header.tokens == descriptor.tokensPerImage else { return true }
                found.append(kv)
                return found.count < needed
            }
            return found
        }
        guard calibration.count >= needed, let mean = ModelReference.mean(calibration) else { return nil }
        let (record, _) = try ModelReference.make(mean, model: model, dtype: try descriptor.valueType())
        try write { try $0.putReference(record, keepingOther: true) }
        guard let stored = try reference(model: model) else {
            throw StoreError.backend(path: location, operation: "reading back model \(model.hex)'s reference", reason: "it is missing just after it was written")
        }
        return stored
    }
}

extension StoreReads {
    /// `model`'s reference as this view holds it, verified (and remembered by the store), or nil
    /// when there is none. A damaged reference record is refused with `corruptRecord`.
    public func reference(model: Digest) throws -> ModelReference? {
        do { return try loadReference(model) } catch let problem as RecordProblem {
            let key = ModelReference.key(model: model)
            throw StoreError.corruptRecord(path: store.location, key: key.description, image: nil, reason: problem.reason)
        }
    }

    /// The reference a relative record stored under `key` needs, whose header names `tag`: the
    /// store's cached one when it is that one, else this view's. nil when the store holds no
    /// reference for the model (decoding then refuses the record by name).
    func reference(named tag: [UInt8]?, key: RecordKey) throws -> ModelReference? {
        if let cached = store.references[key.model], cached.tag == tag { return cached }
        do { return try loadReference(key.model) } catch let problem as RecordProblem {
            throw RecordProblem("its model's reference (record \(ModelReference.key(model: key.model))) is refused: \(problem.reason)")
        }
    }

    private func loadReference(_ model: Digest) throws -> ModelReference? {
        guard let bytes = try readTransaction.recordBytes(ModelReference.key(model: model)) else { return nil }
        let reference = try bytes.withUnsafeBytes { try ModelReference(record: $0, model: model) }
        store.references[model] = reference
        return reference
    }
}

extension StoreWriter {
    /// Stores a model's reference record where the model has none. A reference is never
    /// replaced, since records written against it would no longer decode: where another one is
    /// stored, `keepingOther` keeps it silently (a registration that lost a race to another
    /// writer, which then reads the stored one), else the put is refused.
    func putReference(_ record: EncodedRecord, keepingOther: Bool) throws {
        if try transaction.putRecordIfAbsent(record.key, record.bytes) { return }
        guard let existing = try transaction.recordBytes(record.key), existing != record.bytes, !keepingOther else { return }
        throw StoreError.invalidArgument("model \(record.key.model.hex) already has another reference (\(Digest.sha256(existing).hex)); a model's reference never changes once stored, since its records are decoded against it")
    }
}
