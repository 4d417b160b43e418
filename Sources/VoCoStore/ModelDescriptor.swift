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

    /// Why the descriptor cannot be registered, or nil.
    public func problem() -> String? {
        if (try? valueType()) == nil { return "dtype '\(dtype)' is not F32, F16 or BF16" }
        let fields = [("layers", layers), ("kvHeads", kvHeads), ("headDim", headDim), ("tokensPerImage", tokensPerImage)]
        for (name, value) in fields where value <= 0 || value > Int(UInt32.max) {
            return "\(name) is \(value); it must be in 1...\(UInt32.max)"
        }
        return nil
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
public struct FileHashEntry: Codable, Equatable, Sendable {
    public var path: String
    public var device: UInt64
    public var inode: UInt64
    public var byteCount: Int
    public var mtimeNs: Int64
    public var ctimeNs: Int64
    public var sha256: Digest

    /// The identity the cache key is made of.
    public var identity: String { "\(device):\(inode):\(byteCount):\(mtimeNs):\(ctimeNs):\(path)" }
}

