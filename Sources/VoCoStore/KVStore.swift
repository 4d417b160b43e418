import CLMDB
import Foundation

// MARK: - Options

public struct StoreOptions: Sendable {
    /// Open with MDB_RDONLY: no writes, no growth; for inspection and query processes.
    public var readOnly = false
    /// Create the directory and an empty store when there is none.
    public var create = false
    /// The codec of a new store (default shuffle-zstd, level 3). For an existing store it must
    /// match what the store was created with, or be nil.
    public var codec: CodecSettings?
    /// The map size of a new store; it doubles whenever a write finds it full.
    public var initialMapSize = 64 << 20
    /// The map never grows beyond this.
    public var mapSizeLimit = 1 << 40

    public init(readOnly: Bool = false, create: Bool = false, codec: CodecSettings? = nil) {
        self.readOnly = readOnly
        self.create = create
        self.codec = codec
    }
}

// MARK: - The store

/// One LMDB environment with the named databases of Schemas/store-format.md. Safe to share
/// between threads; many processes may open the same store (one writes at a time).
public final class KVStore: @unchecked Sendable {
    public static let schemaVersion = 1
    static let databaseNames = ["records", "images", "collections", "models", "jobs", "meta"]

    public let path: String
    /// The codec every record of this store is written with.
    public let codec: CodecSettings
    let environment: LMDBEnvironment
    let databases: Databases

    struct Databases {
        let records, images, collections, models, jobs, meta: MDB_dbi
    }

    /// The store named by `$VOCO_STORE`, else `$XDG_DATA_HOME/voco/store`, else
    /// `~/.local/share/voco/store`.
    public static var defaultPath: String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["VOCO_STORE"], !path.isEmpty { return path }
        let data = environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".local/share")
        return (data as NSString).appendingPathComponent("voco/store")
    }

    public init(path: String, options: StoreOptions = StoreOptions()) throws {
        self.path = path
        let fm = FileManager.default
        let isNew = !fm.fileExists(atPath: (path as NSString).appendingPathComponent("data.mdb"))
        if isNew {
            guard options.create, !options.readOnly else { throw StoreError.noStore(path: path) }
            do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw StoreError.lmdb(path: path, operation: "create directory", code: 0, message: error.localizedDescription)
            }
        }
        let requested = try options.codec?.validated()
        environment = try LMDBEnvironment(
            path: path, readOnly: options.readOnly, newMapSize: isNew ? options.initialMapSize : nil,
            mapSizeLimit: max(options.mapSizeLimit, options.initialMapSize), maxDatabases: Self.databaseNames.count)
        // Never add our databases to an LMDB environment that holds something else.
        if !isNew, !options.readOnly, try environment.openDatabases(["meta"], create: false).isEmpty,
           try environment.mainDatabaseEntries() > 0 {
            throw StoreError.notAStore(path: path, reason: "an LMDB environment without VoCo Store's meta database")
        }
        let handles = try environment.openDatabases(Self.databaseNames, create: !options.readOnly)
        guard let meta = handles["meta"] else { throw StoreError.notAStore(path: path, reason: "no meta database") }
        func handle(_ name: String) throws -> MDB_dbi {
            guard let dbi = handles[name] else { throw StoreError.notAStore(path: path, reason: "no \(name) database") }
            return dbi
        }
        databases = Databases(records: try handle("records"), images: try handle("images"),
                              collections: try handle("collections"), models: try handle("models"),
                              jobs: try handle("jobs"), meta: meta)
        codec = try Self.checkMeta(environment: environment, databases: databases, path: path,
                                   requested: requested, initialise: !options.readOnly)
    }

    /// Checks the schema version and reads the codec; a brand-new (empty) store gets both.
    private static func checkMeta(environment: LMDBEnvironment, databases d: Databases, path: String,
                                  requested: CodecSettings?, initialise: Bool) throws -> CodecSettings {
        let readMeta = { (txn: Transaction) -> (version: String?, codec: [UInt8]?, empty: Bool) in
            let version = try txn.get(d.meta, Array("schema_version".utf8)).map { String(decoding: $0, as: UTF8.self) }
            let codec = try txn.get(d.meta, Array("codec".utf8)).map { Array($0) }
            let empty = try [d.records, d.images, d.collections, d.models, d.jobs, d.meta].allSatisfy { try txn.count($0) == 0 }
            return (version, codec, empty)
        }
        var state = try environment.read(readMeta)
        if state.version == nil, state.empty, initialise {
            let settings = requested ?? .default
            state = try environment.write { txn in
                let current = try readMeta(txn)  // another process may have initialised it meanwhile
                guard current.version == nil, current.empty else { return current }
                let codecJSON = try JSONEncoder.sorted.encode(settings)
                try txn.put(d.meta, Array("schema_version".utf8), Array(String(Self.schemaVersion).utf8))
                try txn.put(d.meta, Array("codec".utf8), Array(codecJSON))
                try txn.put(d.meta, Array("created".utf8), Array(Date().ISO8601Format().utf8))
                return (String(Self.schemaVersion), Array(codecJSON), false)
            }
        }
        guard let version = state.version else {
            throw StoreError.notAStore(path: path, reason: state.empty ? "empty LMDB environment with no schema version" : "no schema_version in meta")
        }
        guard version == String(Self.schemaVersion) else {
            throw StoreError.schemaMismatch(path: path, found: version, expected: Self.schemaVersion)
        }
        guard let codecJSON = state.codec, let settings = try? JSONDecoder().decode(CodecSettings.self, from: Data(codecJSON)) else {
            throw StoreError.corruptEntry(path: path, database: "meta", key: "codec", reason: "missing or not a codec description")
        }
        if let requested, requested != settings {
            throw StoreError.codecMismatch(path: path, stored: settings.description, requested: requested.description)
        }
        return settings
    }

    // MARK: Transactions

    /// Runs `body` on one consistent snapshot (MVCC: writers never block it, nor it them).
    /// Everything the transaction methods return is a copy, valid after `body`. Do not call
    /// `read` or `write` inside `body` (the map-resize lock is not reentrant).
    public func read<T>(_ body: (StoreTransaction) throws -> T) throws -> T {
        try environment.read { try body(StoreTransaction(txn: $0, store: self)) }
    }

    /// Runs `body` in the single write transaction and commits it atomically. If the map is full,
    /// everything `body` did is dropped, the map grows and `body` runs again, so `body` must not
    /// have effects outside the transaction. Encode records before calling (`encode`).
    @discardableResult
    public func write<T>(_ body: (StoreTransaction) throws -> T) throws -> T {
        try environment.write { try body(StoreTransaction(txn: $0, store: self)) }
    }

    /// Current map size and bytes in use.
    public var mapSize: Int { environment.mapSize }
    public var usedBytes: Int { environment.usedBytes }

    /// Test hook: overwrite a meta value (to fake another schema version).
    func setMeta(_ key: String, _ value: String) throws {
        try environment.write { try $0.put(databases.meta, Array(key.utf8), Array(value.utf8)) }
    }
}

/// One read or write transaction of a store. Write methods need one from `KVStore.write`.
public struct StoreTransaction {
    let txn: Transaction
    let store: KVStore
    var db: KVStore.Databases { store.databases }
    var path: String { store.path }
}

extension JSONEncoder {
    /// Deterministic JSON (sorted keys) for the store's values.
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
