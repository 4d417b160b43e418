import CLMDB
import Foundation
import VoCoStore

// MARK: - Options

/// LMDB-only settings.
public struct LMDBOptions: Sendable {
    /// The map size of a new store; it doubles whenever a write finds it full.
    public var initialMapSize = 64 << 20
    /// The map never grows beyond this.
    public var mapSizeLimit = 1 << 40

    public init(initialMapSize: Int = 64 << 20, mapSizeLimit: Int = 1 << 40) {
        self.initialMapSize = initialMapSize
        self.mapSizeLimit = mapSizeLimit
    }
}

// MARK: - The backend

/// A store in one LMDB environment with the named databases of Schemas/store-format.md: every
/// read is one snapshot, every write one atomic transaction committed with a sync. Many
/// processes may open the same store (one writes at a time).
public final class LMDBStore: StoreBackend, @unchecked Sendable {
    public static let schemaVersion = 2
    static let databaseNames = ["records", "images", "collections", "members", "models",
                                "jobs", "job_queue", "job_leases", "job_collections", "meta"]

    public let path: String
    public var location: String { path }
    public let codec: CodecSettings
    public var isReadOnly: Bool { environment.readOnly }
    let environment: LMDBEnvironment
    let databases: Databases
    public let jobs: any JobQueue

    struct Databases {
        let records, images, collections, members, models, meta: MDB_dbi
        let jobs, jobQueue, jobLeases, jobCollections: MDB_dbi
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

    /// Opens (or with `options.create`, creates) the store in directory `path`, as a `CacheStore`.
    public static func open(path: String, options: StoreOptions = StoreOptions(), lmdb: LMDBOptions = LMDBOptions()) throws -> CacheStore {
        CacheStore(backend: try LMDBStore(path: path, options: options, lmdb: lmdb))
    }

    public init(path: String, options: StoreOptions = StoreOptions(), lmdb: LMDBOptions = LMDBOptions()) throws {
        self.path = path
        let fm = FileManager.default
        let isNew = !fm.fileExists(atPath: (path as NSString).appendingPathComponent("data.mdb"))
        if isNew {
            guard options.create, !options.readOnly else { throw StoreError.noStore(path: path) }
            do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw StoreError.backend(path: path, operation: "creating the store directory", reason: error.localizedDescription)
            }
        }
        let requested = try options.codec?.validated()
        environment = try LMDBEnvironment(
            path: path, readOnly: options.readOnly, newMapSize: isNew ? lmdb.initialMapSize : nil,
            mapSizeLimit: max(lmdb.mapSizeLimit, lmdb.initialMapSize), maxDatabases: Self.databaseNames.count)
        // Never add our databases to an LMDB environment that holds something else.
        let environment = self.environment
        let existing = try environment.openDatabases(["meta"], create: false)
        if !isNew, existing.isEmpty, try environment.mainDatabaseEntries() > 0 {
            throw StoreError.notAStore(path: path, reason: "an LMDB environment without VoCo Store's meta database")
        }
        let version = try existing["meta"].flatMap { meta in
            try environment.read { try $0.get(meta, Array("schema_version".utf8)).map { String(decoding: $0, as: UTF8.self) } }
        }
        if version == "1" {
            guard !options.readOnly else {
                throw StoreError.schemaMismatch(path: path, found: "1", expected: Self.schemaVersion)
            }
            try LMDBMigration.upgradeFromVersion1(environment)
        }
        let handles = try environment.openDatabases(Self.databaseNames, create: !options.readOnly)
        func handle(_ name: String) throws -> MDB_dbi {
            guard let dbi = handles[name] else { throw StoreError.notAStore(path: path, reason: "no \(name) database") }
            return dbi
        }
        let databases = Databases(records: try handle("records"), images: try handle("images"), collections: try handle("collections"),
                              members: try handle("members"), models: try handle("models"), meta: try handle("meta"),
                              jobs: try handle("jobs"), jobQueue: try handle("job_queue"), jobLeases: try handle("job_leases"),
                              jobCollections: try handle("job_collections"))
        self.databases = databases
        jobs = LMDBJobQueue(environment: environment, db: databases)
        codec = try Self.checkMeta(environment: environment, databases: databases, path: path,
                                   requested: requested, initialise: !options.readOnly)
    }

    /// Checks the schema version and reads the codec; a brand-new (empty) store gets both.
    private static func checkMeta(environment: LMDBEnvironment, databases d: Databases, path: String,
                                  requested: CodecSettings?, initialise: Bool) throws -> CodecSettings {
        let all = [d.records, d.images, d.collections, d.members, d.models, d.jobs, d.jobQueue, d.jobLeases, d.jobCollections, d.meta]
        let readMeta = { (txn: Transaction) -> (version: String?, codec: [UInt8]?, empty: Bool) in
            let version = try txn.get(d.meta, Array("schema_version".utf8)).map { String(decoding: $0, as: UTF8.self) }
            let codec = try txn.get(d.meta, Array("codec".utf8)).map { Array($0) }
            let empty = try all.allSatisfy { try txn.count($0) == 0 }
            return (version, codec, empty)
        }
        var state = try environment.read(readMeta)
        if state.version == nil, state.empty, initialise {
            let settings = requested ?? .default
            state = try environment.write { txn in
                let current = try readMeta(txn)  // another process may have initialised it meanwhile
                guard current.version == nil, current.empty else { return current }
                let codecJSON = try JSONEncoder.sortedKeys.encode(settings)
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

    public func read<T>(_ body: (any StoreReadTransaction) throws -> T) throws -> T {
        try environment.read { try body(LMDBReadTransaction(txn: $0, db: databases)) }
    }

    public func write<T>(_ body: (any StoreWriteTransaction) throws -> T) throws -> T {
        try environment.write { try body(LMDBWriteTransaction(txn: $0, db: databases)) }
    }

    /// Current map size and bytes in use.
    public var mapSize: Int { environment.mapSize }
    public var usedBytes: Int { environment.usedBytes }

    public func storageFigures() -> [String: Int] {
        ["schemaVersion": Self.schemaVersion, "mapSize": mapSize, "usedBytes": usedBytes]
    }

    /// LMDB's own entry counts against what a walk finds, and the members index against the
    /// collections it indexes.
    public func checkStructure() throws -> [VerifyFailure] {
        try environment.read { txn in try LMDBStructureCheck(txn: txn, db: databases).run() }
    }

    /// Test hook: overwrite a meta value (to fake another schema version).
    func setMeta(_ key: String, _ value: String) throws {
        try environment.write { try $0.put(databases.meta, Array(key.utf8), Array(value.utf8)) }
    }
}

extension JSONEncoder {
    /// Deterministic JSON (sorted keys) for the store's values.
    static var sortedKeys: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
