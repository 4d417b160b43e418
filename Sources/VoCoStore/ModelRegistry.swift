import Foundation

// MARK: - Values in `models`

/// A model the store has records for, keyed by its fingerprint (ModelFingerprint.swift).
/// Records are checked against it: the same layers, KV heads, head dim and dtype.
public struct ModelDescriptor: Codable, Equatable, Sendable {
    public var fingerprint: Digest
    public var name: String
    public var layers: Int
    public var kvHeads: Int
    public var headDim: Int
    /// k: rows an image keeps (P' of Schemas/model-format.md for `voco` and `avgpool`).
    public var tokensPerImage: Int
    /// `voco` | `full` | `avgpool`
    public var mode: String
    /// `sequential` | `shared`
    public var layout: String
    /// The element type of the model's weights and so of its caches: `F32` | `F16` | `BF16`.
    public var dtype: String
    /// The files the fingerprint binds (name relative to the model directory, SHA-256, size).
    public var files: [ModelFile]
    public var registeredAt: String

    public init(fingerprint: Digest, name: String, layers: Int, kvHeads: Int, headDim: Int, tokensPerImage: Int,
                mode: String = "voco", layout: String = "sequential", dtype: String, files: [ModelFile] = [],
                registeredAt: String = Date().ISO8601Format()) {
        self.fingerprint = fingerprint
        self.name = name
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.tokensPerImage = tokensPerImage
        self.mode = mode
        self.layout = layout
        self.dtype = dtype
        self.files = files
        self.registeredAt = registeredAt
    }

    public func valueType() throws -> ValueType {
        guard let dtype = ValueType.allCases.first(where: { $0.name == dtype }) else {
            throw StoreError.invalidArgument("model \(fingerprint.hex): dtype '\(dtype)' is not F32, F16 or BF16")
        }
        return dtype
    }

    /// Why a cache of these shapes cannot belong to this model, or nil.
    func mismatch(layers: Int, kvHeads: Int, headDim: Int) -> String? {
        guard (layers, kvHeads, headDim) == (self.layers, self.kvHeads, self.headDim) else {
            return "shape [layers \(layers), kvHeads \(kvHeads), headDim \(headDim)] differs from model \(fingerprint.short)'s [\(self.layers), \(self.kvHeads), \(self.headDim)]"
        }
        return nil
    }
}

/// One file bound into a model fingerprint.
public struct ModelFile: Codable, Equatable, Sendable {
    public var name: String
    public var sha256: Digest
    public var byteCount: Int
}

/// A cached file hash: valid while the file's device, inode, size, mtime and ctime are unchanged.
struct FileHashEntry: Codable, Equatable {
    var path: String
    var device: UInt64
    var inode: UInt64
    var byteCount: Int
    var mtimeNs: Int64
    var ctimeNs: Int64
    var sha256: Digest

    /// The identity the cache key is made of.
    var identity: String { "\(device):\(inode):\(byteCount):\(mtimeNs):\(ctimeNs):\(path)" }
}

/// `models` holds two kinds of keys, told apart by their first byte.
enum ModelKeys {
    static func descriptor(_ fingerprint: Digest) -> [UInt8] { [1] + fingerprint.bytes }
    static func fileHash(identity: String) -> [UInt8] { [2] + Digest.sha256(Array(identity.utf8)).bytes }
}

// MARK: - Inside a transaction

extension StoreTransaction {
    public func model(_ fingerprint: Digest) throws -> ModelDescriptor? {
        try decodeJSON(ModelDescriptor.self, db.models, "models", ModelKeys.descriptor(fingerprint))
    }

    /// Every registered model, by fingerprint.
    public func models() throws -> [ModelDescriptor] {
        var out: [ModelDescriptor] = []
        try txn.scan(db.models, prefix: [1]) { k, v in
            guard let descriptor = try? JSONDecoder().decode(ModelDescriptor.self, from: Data(v)) else {
                throw StoreError.corruptEntry(path: path, database: "models", key: Digest.hexString(k), reason: "not a model descriptor")
            }
            out.append(descriptor)
            return true
        }
        return out
    }

    /// Registers a model. Registering it again is allowed when shapes and dtype are the same.
    public func register(_ descriptor: ModelDescriptor) throws {
        _ = try descriptor.valueType()
        guard [descriptor.layers, descriptor.kvHeads, descriptor.headDim, descriptor.tokensPerImage].allSatisfy({ $0 > 0 }) else {
            throw StoreError.invalidArgument("model \(descriptor.fingerprint.hex): layers, kvHeads, headDim and tokensPerImage must be positive")
        }
        if let existing = try model(descriptor.fingerprint),
           existing.mismatch(layers: descriptor.layers, kvHeads: descriptor.kvHeads, headDim: descriptor.headDim) != nil
            || existing.dtype != descriptor.dtype {
            throw StoreError.invalidArgument("model \(descriptor.fingerprint.hex) is already registered with other shapes or dtype; the same fingerprint cannot describe two models")
        }
        try txn.put(db.models, ModelKeys.descriptor(descriptor.fingerprint), Array(try JSONEncoder.sorted.encode(descriptor)))
    }

    func cachedFileHash(_ entry: FileHashEntry) throws -> Digest? {
        guard let cached = try decodeJSON(FileHashEntry.self, db.models, "models", ModelKeys.fileHash(identity: entry.identity)) else { return nil }
        var probe = cached
        probe.sha256 = entry.sha256
        return probe == entry ? cached.sha256 : nil
    }

    func cacheFileHash(_ entry: FileHashEntry) throws {
        try txn.put(db.models, ModelKeys.fileHash(identity: entry.identity), Array(try JSONEncoder.sorted.encode(entry)))
    }
}
