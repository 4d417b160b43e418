import CLMDB
import Foundation
import VoCoStore

// MARK: - Options

/// LMDB-only settings.
public struct LMDBOptions: Sendable {
    /// How reads walk the store's pages.
    public enum Reads: Sendable {
        /// LMDB itself (fast, zero-copy; trusts every page: a damaged one can crash the process).
        case lmdb
        /// VoCo Store's own page reader: every page is checked as it is read, damage is an error
        /// (`StoreError.damagedPage`), never a crash. Read-only.
        case checked
        /// As `checked`, and damage refuses nothing: meta pages and the file's length are
        /// checked and reported by `checkStructure`, and walks skip damaged subtrees. For
        /// verify and salvage. Read-only.
        case forensic
    }

    /// The map size of a new store; it doubles whenever a write finds it full.
    public var initialMapSize = 64 << 20
    /// The map never grows beyond this.
    public var mapSizeLimit = 1 << 40
    /// nil: `.checked` for a store opened read-only (as fast, and no damaged page can crash
    /// the process), `.lmdb` for one opened for writing.
    public var reads: Reads?

    public init(initialMapSize: Int = 64 << 20, mapSizeLimit: Int = 1 << 40, reads: Reads? = nil) {
        self.initialMapSize = initialMapSize
        self.mapSizeLimit = mapSizeLimit
        self.reads = reads
    }
}

// MARK: - The backend

/// A store in one LMDB environment with the named databases of Schemas/store-format.md: every
/// read is one snapshot, every write one atomic transaction committed with a sync. Many
/// processes may open the same store (one writes at a time), all through the same `lock.mdb`.
public final class LMDBStore: StoreBackend, @unchecked Sendable {
    public static let schemaVersion = 3
    static let databaseNames = ["records", "images", "collections", "members", "models",
                                "jobs", "job_queue", "job_leases", "job_collections", "meta"]
    static let emptyFileReason = "data.mdb is empty (0 bytes): a store whose creation stopped before it wrote anything; remove data.mdb to create the store again"

    public let path: String
    public var location: String { path }
    public let codec: CodecSettings
    public var isReadOnly: Bool { access.environment?.readOnly ?? true }
    let access: LMDBAccess
    /// The LMDB environment (nil for a forensic open of a store LMDB refuses).
    var environment: LMDBEnvironment? { access.environment }
    var databases: Databases { access.db }
    public let jobs: any JobQueue
    /// What a forensic open found wrong before reading anything.
    private let openProblems: [VerifyFailure]
    let options: LMDBOptions

    struct Databases {
        let records, images, collections, members, models, meta: MDB_dbi
        let jobs, jobQueue, jobLeases, jobCollections: MDB_dbi
        /// Schema 3: JSON values and meta values carry a checksum (`ValueSeal`).
        let sealed: Bool

        init(_ handles: [String: MDB_dbi], sealed: Bool, path: String) throws {
            func handle(_ name: String) throws -> MDB_dbi {
                guard let dbi = handles[name] else { throw StoreError.notAStore(path: path, reason: "no \(name) database") }
                return dbi
            }
            (records, images, collections, members, models, meta) = (try handle("records"), try handle("images"), try handle("collections"),
                                                                      try handle("members"), try handle("models"), try handle("meta"))
            (jobs, jobQueue, jobLeases, jobCollections) = (try handle("jobs"), try handle("job_queue"), try handle("job_leases"), try handle("job_collections"))
            self.sealed = sealed
        }

        /// Handles for the page reader: the names, numbered.
        static var pageReaderNames: [MDB_dbi: String] {
            Dictionary(uniqueKeysWithValues: LMDBStore.databaseNames.enumerated().map { (MDB_dbi($0.offset + 1), $0.element) })
        }
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
        var lmdb = lmdb
        lmdb.reads = lmdb.reads ?? (options.readOnly ? .checked : .lmdb)
        self.options = lmdb
        let requested = try options.codec?.validated()
        if lmdb.reads != .lmdb {
            let names = Databases.pageReaderNames
            let reader = try LMDBCheckedReader(path: path, names: names, forensic: lmdb.reads == .forensic)
            let handles = Dictionary(uniqueKeysWithValues: names.map { ($0.value, $0.key) })
            let tolerant: ((String, PageDamage) -> Void)? = lmdb.reads == .forensic ? { _, _ in } : nil
            // Never read another program's LMDB environment as a damaged store: one whose main
            // database is whole and holds only databases, none of them ours. (A main database
            // that cannot be read, or holds other entries, may be ours, damaged.)
            let main = try? reader.read { snapshot -> (names: [String], allDatabases: Bool) in
                var names: [String] = []
                try snapshot.mainTree.walk { k, _ in
                    names.append(String(decoding: k, as: UTF8.self))
                    return true
                }
                return (names, names.allSatisfy { (try? snapshot.mainTree.subDatabase(named: $0)) != nil })
            }
            if let main, main.allDatabases, Set(main.names).isDisjoint(with: Self.databaseNames) {
                throw StoreError.notAStore(path: path, reason: main.names.isEmpty ? "empty LMDB environment with no schema version" : "an LMDB environment without VoCo Store's meta database")
            }
            let version = try Self.readSchemaVersion(reader: reader, handles: handles, tolerant: tolerant)
            if version == "1" { throw StoreError.schemaMismatch(path: path, found: "1", expected: Self.schemaVersion) }
            let databases = try Databases(handles, sealed: version != "2", path: path)
            let access = LMDBAccess(path: path, environment: nil, checked: reader, db: databases, tolerant: tolerant)
            let meta = try Self.checkMeta(access: access, path: path, requested: requested, initialise: false, forensic: lmdb.reads == .forensic)
            self.access = access
            jobs = LMDBJobQueue(access: access)
            codec = meta.codec
            openProblems = reader.openProblems + meta.problems
            return
        }
        var isNew: Bool
        switch try LMDBFileCheck.check(storePath: path) {
        case .absent: isNew = true
        case .empty:
            guard options.create, !options.readOnly else { throw StoreError.notAStore(path: path, reason: Self.emptyFileReason) }
            isNew = true
        case .present: isNew = false
        }
        var createdDirectory = false
        if isNew {
            guard options.create, !options.readOnly else { throw StoreError.noStore(path: path) }
            createdDirectory = !FileManager.default.fileExists(atPath: path)
            do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw StoreError.backend(path: path, operation: "creating the store directory", reason: (error as NSError).localizedFailureReason ?? error.localizedDescription)
            }
        }
        let environment: LMDBEnvironment
        do {
            environment = try LMDBEnvironment(
                path: path, readOnly: options.readOnly, newMapSize: isNew ? lmdb.initialMapSize : nil,
                mapSizeLimit: max(lmdb.mapSizeLimit, lmdb.initialMapSize), maxDatabases: Self.databaseNames.count)
        } catch {
            if isNew { Self.removeIncompleteStore(path, directory: createdDirectory) }
            throw error
        }
        // Never add our databases to an LMDB environment that holds something else.
        let existing = try environment.openDatabases(["meta"], create: false)
        if !isNew, existing.isEmpty, try environment.mainDatabaseEntries() > 0 {
            throw StoreError.notAStore(path: path, reason: "an LMDB environment without VoCo Store's meta database")
        }
        var version = try existing["meta"].flatMap { meta in
            try environment.read { try $0.get(meta, Array("schema_version".utf8)).map { String(decoding: $0, as: UTF8.self) } }
        }
        if version == "1" || (version == "2" && !options.readOnly) {
            guard !options.readOnly else { throw StoreError.schemaMismatch(path: path, found: "1", expected: Self.schemaVersion) }
            if version == "1" { try LMDBMigration.upgradeFromVersion1(environment) }
            try LMDBMigration.upgradeFromVersion2(environment)
            version = String(Self.schemaVersion)
        }
        // A store that has a schema has all its databases: a missing one is damage, not a
        // database to create empty.
        let handles = try environment.openDatabases(Self.databaseNames, create: version == nil && !options.readOnly)
        if version != nil, let missing = Self.databaseNames.first(where: { handles[$0] == nil }) {
            throw StoreError.damagedPage(path: path, database: missing, page: nil, reason: "the main database has no entry for it")
        }
        let databases = try Databases(handles, sealed: version != "2", path: path)
        let access = LMDBAccess(path: path, environment: environment, checked: nil, db: databases, tolerant: nil)
        codec = try Self.checkMeta(access: access, path: path, requested: requested, initialise: !options.readOnly, forensic: false).codec
        self.access = access
        openProblems = []
        jobs = LMDBJobQueue(access: access)
    }

    /// After a failed creation: a data.mdb shorter than its two meta pages holds nothing, and
    /// a directory made for the store and left empty is removed again.
    private static func removeIncompleteStore(_ path: String, directory: Bool) {
        let dataPath = (path as NSString).appendingPathComponent("data.mdb")
        if let size = try? FileManager.default.attributesOfItem(atPath: dataPath)[.size] as? Int, size < 8192 {
            unlink(dataPath)
        }
        if directory { rmdir(path) }  // only when empty
    }

    private static func readSchemaVersion(reader: LMDBCheckedReader, handles: [String: MDB_dbi], tolerant: ((String, PageDamage) -> Void)?) throws -> String? {
        guard let meta = handles["meta"] else { return nil }
        do {
            return try reader.read(onDamage: tolerant) { snapshot in
                try snapshot.getCopy(meta, Array("schema_version".utf8)).map { String(decoding: $0, as: UTF8.self) }
            }
        } catch where tolerant != nil {
            return String(schemaVersion)  // verify reports what made it unreadable
        }
    }

    /// Checks the schema version and reads the codec; a brand-new (empty) store gets both.
    private static func checkMeta(access: LMDBAccess, path: String, requested: CodecSettings?,
                                  initialise: Bool, forensic: Bool) throws -> (codec: CodecSettings, problems: [VerifyFailure]) {
        let d = access.db
        let all = [d.records, d.images, d.collections, d.members, d.models, d.jobs, d.jobQueue, d.jobLeases, d.jobCollections, d.meta]
        let readMeta = { (txn: any LMDBKeyValueReads) -> (version: String?, codec: [UInt8]?, empty: Bool) in
            let version = try txn.getCopy(d.meta, Array("schema_version".utf8)).map { String(decoding: $0, as: UTF8.self) }
            let key = Array("codec".utf8)
            let codec = try txn.withValue(d.meta, key) { raw in try raw.map { raw in try key.withUnsafeBytes { Array(try d.open(raw, key: $0, database: "meta", path: path)) } } }
            let empty = try all.allSatisfy { try txn.count($0) == 0 }
            return (version, codec, empty)
        }
        var state: (version: String?, codec: [UInt8]?, empty: Bool)
        do { state = try access.read(readMeta) } catch let error as StoreError where forensic {
            return (requested ?? .default, [VerifyFailure(database: "meta", key: "-", reason: "\(error)")])
        }
        if state.version == nil, state.empty, initialise, let environment = access.environment {
            let settings = requested ?? .default
            state = try environment.write { txn in
                let current = try readMeta(txn)  // another process may have initialised it meanwhile
                guard current.version == nil, current.empty else { return current }
                let codecJSON = try JSONEncoder.sortedKeys.encode(settings)
                try txn.put(d.meta, Array("schema_version".utf8), Array(String(Self.schemaVersion).utf8))
                try txn.putSealed(d.meta, Array("codec".utf8), codecJSON)
                try txn.putSealed(d.meta, Array("created".utf8), Data(Date().ISO8601Format().utf8))
                return (String(Self.schemaVersion), Array(codecJSON), false)
            }
        }
        guard let version = state.version else {
            if forensic { return (requested ?? .default, [VerifyFailure(database: "meta", key: "schema_version", reason: "missing: the meta database is empty or unreadable")]) }
            throw StoreError.notAStore(path: path, reason: state.empty ? "empty LMDB environment with no schema version" : "no schema_version in meta")
        }
        guard version == String(Self.schemaVersion) || (version == "2" && access.isReadOnly) else {
            throw StoreError.schemaMismatch(path: path, found: version, expected: Self.schemaVersion)
        }
        guard let codecJSON = state.codec, let settings = try? JSONDecoder().decode(CodecSettings.self, from: Data(codecJSON)) else {
            let error = StoreError.corruptEntry(path: path, database: "meta", key: "codec", reason: "missing or not a codec description")
            if forensic { return (requested ?? .default, [VerifyFailure(database: "meta", key: "codec", reason: "missing or not a codec description")]) }
            throw error
        }
        if let requested, requested != settings {
            throw StoreError.codecMismatch(path: path, stored: settings.description, requested: requested.description)
        }
        return (settings, [])
    }

    // MARK: Transactions

    public func read<T>(_ body: (any StoreReadTransaction) throws -> T) throws -> T {
        try access.read { try body(LMDBReadTransaction(txn: $0, db: databases)) }
    }

    public func write<T>(_ body: (any StoreWriteTransaction) throws -> T) throws -> T {
        guard let environment = access.environment else { throw StoreError.readOnly(path: path) }
        return try environment.write { try body(LMDBWriteTransaction(txn: $0, db: databases)) }
    }

    /// Current map size and bytes in use (of the snapshot a page reader reads, for those).
    public var mapSize: Int { environment?.mapSize ?? Int(clamping: (try? access.checked?.read { $0.meta.mapSize }) ?? 0) }
    public var usedBytes: Int {
        if let environment { return environment.usedBytes }
        return (try? access.checked?.read { (Int($0.meta.lastPage) + 1) * $0.meta.pageSize }) ?? 0
    }

    public func storageFigures() -> [String: Int] {
        ["schemaVersion": databases.sealed ? Self.schemaVersion : 2, "mapSize": mapSize, "usedBytes": usedBytes]
    }

    /// LMDB's own entry counts against what a walk finds, the members and job indexes against
    /// what they index, every sealed value's checksum; with the page reader, every page of
    /// every tree and the free list (`LMDBPageCheck`), and what opening found.
    public func checkStructure() throws -> [VerifyFailure] {
        var failures = openProblems
        if let checked = access.checked {
            failures += try checked.read(onDamage: { _, _ in }) { snapshot in
                LMDBPageCheck(snapshot: snapshot).run() + (try LMDBStructureCheck(txn: snapshot, db: databases).run())
            }
        } else {
            failures += try access.read { try LMDBStructureCheck(txn: $0, db: databases).run() }
        }
        return failures
    }

    /// Verify walks every page: through the page reader, so that damage is reported, not met
    /// with a crash.
    public func verifyingBackend() throws -> any StoreBackend {
        options.reads == .forensic ? self : try LMDBStore(path: path, options: StoreOptions(readOnly: true), lmdb: LMDBOptions(reads: .forensic))
    }

    /// Every entry of every database in key order (database name, key, value), as the store's
    /// reads see them: for comparing what LMDB reads of two stores.
    public func dumpEntries(_ body: (String, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws {
        let d = databases
        let named = [("records", d.records), ("images", d.images), ("collections", d.collections), ("members", d.members),
                     ("models", d.models), ("jobs", d.jobs), ("job_queue", d.jobQueue), ("job_leases", d.jobLeases),
                     ("job_collections", d.jobCollections), ("meta", d.meta)]
        try access.read { txn in
            for (name, dbi) in named {
                try txn.scan(dbi) { k, v in
                    body(name, k, v)
                    return true
                }
            }
        }
    }

    /// Test hook: overwrite a meta value (to fake another schema version).
    func setMeta(_ key: String, _ value: String) throws {
        try environment?.write { try $0.put(databases.meta, Array(key.utf8), Array(value.utf8)) }
    }
}

// MARK: - Reads and writes, by LMDB or by the page reader

/// How a store's transactions reach its pages: LMDB (reads and writes) or the page reader
/// (reads only). Shared by the store and its job queue.
final class LMDBAccess: @unchecked Sendable {
    let path: String
    let environment: LMDBEnvironment?
    let checked: LMDBCheckedReader?
    let db: LMDBStore.Databases
    /// Page-reader walks skip damaged subtrees (forensic opens).
    let tolerant: ((String, PageDamage) -> Void)?

    init(path: String, environment: LMDBEnvironment?, checked: LMDBCheckedReader?, db: LMDBStore.Databases, tolerant: ((String, PageDamage) -> Void)?) {
        self.path = path
        self.environment = environment
        self.checked = checked
        self.db = db
        self.tolerant = tolerant
    }

    var isReadOnly: Bool { environment?.readOnly ?? true }

    func read<T>(_ body: (any LMDBKeyValueReads) throws -> T) throws -> T {
        if let checked { return try checked.read(onDamage: tolerant) { try body($0) } }
        guard let environment else { throw StoreError.backend(path: path, operation: "reading", reason: "the store is not open") }
        return try environment.read { try body($0) }
    }

    @discardableResult
    func write<T>(_ body: (Transaction) throws -> T) throws -> T {
        guard let environment else { throw StoreError.readOnly(path: path) }
        return try environment.write(body)
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
