import CLMDB
import Foundation
import VoCoStore

// MARK: - The environment: one map, transactions, growth

/// An LMDB environment opened with MDB_NOTLS, so read transactions are not tied to threads and
/// many readers (threads or processes) run beside the one writer. Every transaction of this
/// process holds `resizeLock` shared; growing the map holds it exclusively, because LMDB may
/// only change the map size when no transaction of the process is active.
///
/// The handle is opened whole or not at all (`openHandle` closes what it made when opening
/// fails), so `deinit` is the one place that closes it.
final class LMDBEnvironment: @unchecked Sendable {
    let path: String
    let readOnly: Bool
    /// Opened without `lock.mdb` (MDB_NOLOCK): the directory could not be written, or the file
    /// system is read-only. Reads are then safe only while no process writes the store.
    let lockless: Bool
    /// The map never grows beyond this many bytes.
    let mapSizeLimit: Int
    private let env: OpaquePointer
    private let resizeLock = ReadWriteLock()
    private let rule: LockFileRule?
    private let dataFile: FileID?

    init(path: String, readOnly: Bool, newMapSize: Int?, mapSizeLimit: Int, maxDatabases: Int) throws {
        self.path = path
        self.readOnly = readOnly
        self.mapSizeLimit = mapSizeLimit
        let opened = try Self.openHandle(path: path, readOnly: readOnly, newMapSize: newMapSize, maxDatabases: maxDatabases)
        do {
            rule = opened.lockless ? nil : try LockFileRule(storePath: path)
        } catch {
            mdb_env_close(opened.env)
            throw error
        }
        env = opened.env
        lockless = opened.lockless
        dataFile = FileID(path: (path as NSString).appendingPathComponent("data.mdb"))
        if let dataFile { OpenStores.add(dataFile, self) }
    }

    deinit {
        mdb_env_close(env)
        if let dataFile { OpenStores.remove(dataFile, self) }
    }

    // MARK: Opening

    /// An open environment handle, or an error naming the store and the problem; on failure
    /// nothing is left open.
    private static func openHandle(path: String, readOnly: Bool, newMapSize: Int?, maxDatabases: Int) throws -> (env: OpaquePointer, lockless: Bool) {
        _ = ignoreFileSizeSignal
        let dataPath = (path as NSString).appendingPathComponent("data.mdb")
        let alreadyOpen = FileID(path: dataPath).map(OpenStores.isOpen) ?? false
        if !alreadyOpen { try LockFilePreparation.prepare(storePath: path, readOnly: readOnly) }
        func attempt(_ extra: UInt32) -> (OpaquePointer?, Int32) {
            var handle: OpaquePointer?
            var rc = mdb_env_create(&handle)
            guard rc == 0, let env = handle else { return (nil, rc) }
            rc = mdb_env_set_maxdbs(env, MDB_dbi(maxDatabases))
            // Only a new environment gets a size here; an existing one keeps the size it recorded.
            if rc == 0, let newMapSize { rc = mdb_env_set_mapsize(env, newMapSize) }
            if rc == 0 {
                let flags = UInt32(MDB_NOTLS) | (readOnly ? UInt32(MDB_RDONLY) : 0) | extra
                rc = mdb_env_open(env, path, flags, 0o664)
            }
            guard rc == 0 else {
                mdb_env_close(env)
                return (nil, rc)
            }
            return (env, 0)
        }
        var (env, rc) = attempt(0)
        var lockless = false
        if env == nil, readOnly, rc == EACCES || rc == EPERM, !alreadyOpen {
            // A reader who may not write the directory (a shared, read-only store): without
            // lock.mdb it cannot take a reader slot, so a writer could reuse the pages it reads.
            // Only when no process has the store open through VoCo Store.
            if LockFileRule.anyGeneration(storePath: path) {
                throw StoreError.storeInUse(path: path, reason: "lock.mdb cannot be created or written here (\(String(cString: strerror(rc)))) and another process has the store open; reading without the lock file is safe only while nobody writes: try again when that process has finished, or ask for write access to the store's directory")
            }
            (env, rc) = attempt(UInt32(MDB_NOLOCK))
            lockless = true
        }
        guard let env else { throw openError(rc, path: path, readOnly: readOnly) }
        // On a read-only file system LMDB itself goes on without lock.mdb.
        if readOnly, !FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("lock.mdb")) { lockless = true }
        return (env, lockless)
    }

    /// What a failed mdb_env_open means, in words that name the store and what to do.
    private static func openError(_ rc: Int32, path: String, readOnly: Bool) -> Error {
        let lockPath = (path as NSString).appendingPathComponent("lock.mdb")
        var isDirectory: ObjCBool = false
        switch rc {
        case EISDIR, ENOTDIR:
            if FileManager.default.fileExists(atPath: lockPath, isDirectory: &isDirectory), isDirectory.boolValue {
                return StoreError.backend(path: path, operation: "opening the store", reason: "lock.mdb is a directory, not a file; remove it (LMDB makes the lock file again)")
            }
            return StoreError.notAStore(path: path, reason: "data.mdb or lock.mdb is not a file")
        case EROFS:
            return StoreError.backend(path: path, operation: "opening the store for writing", reason: "the file system is read-only; only reading commands (voco inspect) can open it")
        case EACCES, EPERM:
            return StoreError.backend(path: path, operation: readOnly ? "opening the store" : "opening the store for writing",
                                      reason: "permission denied (\(readOnly ? "data.mdb must be readable" : "the directory, data.mdb and lock.mdb must be writable"))")
        case ENOSPC, EDQUOT:
            return StoreError.diskFull(path: path, operation: "opening the store")
        case EFBIG:
            return StoreError.fileSizeLimit(path: path, operation: "opening the store", limit: fileSizeLimit() ?? 0)
        case MDB_INVALID:
            return StoreError.notAStore(path: path, reason: "data.mdb is not an LMDB file, or its meta pages are damaged")
        case MDB_VERSION_MISMATCH:
            return StoreError.notAStore(path: path, reason: "data.mdb or lock.mdb was made by an incompatible LMDB version (\(lmdbMessage(rc)))")
        case ENOMEM:
            return StoreError.backend(path: path, operation: "mapping the store", reason: "not enough address space for its map size (is data.mdb's meta page damaged? run voco inspect verify)")
        default:
            return StoreError.backend(path: path, operation: "LMDB mdb_env_open", reason: "\(lmdbMessage(rc)) (\(rc))")
        }
    }

    var mapSize: Int {
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        return info.me_mapsize
    }

    /// Bytes of the map in use (last page + 1, times the page size).
    var usedBytes: Int {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        mdb_env_info(env, &info)
        mdb_env_stat(env, &stat)
        return (info.me_last_pgno + 1) * Int(stat.ms_psize)
    }

    /// Opens (or with `create`, creates) named databases; a missing one is nil.
    func openDatabases(_ names: [String], create: Bool) throws -> [String: MDB_dbi] {
        let open = { (txn: Transaction) -> [String: MDB_dbi] in
            var handles: [String: MDB_dbi] = [:]
            for name in names {
                var dbi = MDB_dbi()
                let rc = mdb_dbi_open(txn.txn, name, create ? UInt32(MDB_CREATE) : 0, &dbi)
                if rc == MDB_NOTFOUND { continue }
                try check(rc, path: self.path, "mdb_dbi_open(\(name))")
                handles[name] = dbi
            }
            return handles
        }
        // Handles opened in a read transaction stay valid only when it commits.
        return create ? try write(open) : try read(open, commit: true)
    }

    /// Entries of the unnamed main database: the names of the named databases (and any plain
    /// keys another program stored there).
    func mainDatabaseEntries() throws -> Int {
        try read { txn in
            var dbi = MDB_dbi()
            try check(mdb_dbi_open(txn.txn, nil, 0, &dbi), path: path, "mdb_dbi_open(main)")
            return try txn.count(dbi)
        }
    }

    // MARK: Transactions

    /// Runs `body` in a read-only snapshot; values it sees are valid only inside `body`.
    func read<T>(_ body: (Transaction) throws -> T, commit: Bool = false) throws -> T {
        try rule?.check()
        while true {
            resizeLock.lockShared()
            var txn: OpaquePointer?
            let rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
            if rc == MDB_MAP_RESIZED {
                resizeLock.unlock()
                try adoptGrownMap()
                continue
            }
            defer { resizeLock.unlock() }
            try check(rc, path: path, "mdb_txn_begin(read)")
            guard let txn else { throw StoreError.backend(path: path, operation: "LMDB mdb_txn_begin", reason: "no transaction") }
            do {
                let result = try body(Transaction(txn: txn, path: path))
                if commit { try check(mdb_txn_commit(txn), path: path, "mdb_txn_commit(read)") } else { mdb_txn_abort(txn) }
                return result
            } catch {
                mdb_txn_abort(txn)
                throw error
            }
        }
    }

    /// Runs `body` in the write transaction and commits. When the map is full, the transaction
    /// is aborted (nothing of it is kept), the map grows, and `body` runs again from the start;
    /// so `body` must only compute from what it reads in the transaction.
    @discardableResult
    func write<T>(_ body: (Transaction) throws -> T) throws -> T {
        guard !readOnly else { throw StoreError.readOnly(path: path) }
        try rule?.check()
        while true {
            resizeLock.lockShared()
            let sizeAtStart = mapSize
            var txn: OpaquePointer?
            let rc = mdb_txn_begin(env, nil, 0, &txn)
            if rc == MDB_MAP_RESIZED {
                resizeLock.unlock()
                try adoptGrownMap()
                continue
            }
            guard rc == 0, let txn else {
                resizeLock.unlock()
                try check(rc, path: path, "mdb_txn_begin(write)")
                throw StoreError.backend(path: path, operation: "LMDB mdb_txn_begin(write)", reason: "no transaction")
            }
            let result: T
            do {
                result = try body(Transaction(txn: txn, path: path))
            } catch is MapFull {
                mdb_txn_abort(txn)
                resizeLock.unlock()
                try grow(from: sizeAtStart)
                continue
            } catch {
                mdb_txn_abort(txn)
                resizeLock.unlock()
                throw error
            }
            let committed = mdb_txn_commit(txn)  // frees txn whatever the outcome
            resizeLock.unlock()
            if committed == MDB_MAP_FULL {
                try grow(from: sizeAtStart)
                continue
            }
            if committed == EIO || committed == ENOSPC || committed == EDQUOT || committed == EFBIG {
                throw writeFailure(committed, operation: "committing a write")
            }
            try check(committed, path: path, "mdb_txn_commit")
            return result
        }
    }

    // MARK: Growth

    /// Doubles the map (up to the limit) unless another thread already grew it past `size`.
    private func grow(from size: Int) throws {
        resizeLock.lockExclusive()
        defer { resizeLock.unlock() }
        guard mapSize <= size else { return }
        guard size < mapSizeLimit else { throw StoreError.mapFull(path: path, mapSize: size, limit: mapSizeLimit) }
        let (doubled, overflow) = size.multipliedReportingOverflow(by: 2)
        try check(mdb_env_set_mapsize(env, overflow ? mapSizeLimit : min(mapSizeLimit, doubled)), path: path, "mdb_env_set_mapsize")
    }

    /// Another process grew the map: take its size.
    private func adoptGrownMap() throws {
        resizeLock.lockExclusive()
        defer { resizeLock.unlock() }
        try check(mdb_env_set_mapsize(env, 0), path: path, "mdb_env_set_mapsize(0)")
    }
}

extension LMDBEnvironment {
    /// A write that failed for want of room, said as such. LMDB reports a short write as EIO
    /// ("Input/output error"): when the file system is (nearly) full or data.mdb has reached
    /// the process's file-size limit, that is what it was.
    func writeFailure(_ rc: Int32, operation: String) -> StoreError {
        if rc == ENOSPC || rc == EDQUOT { return .diskFull(path: path, operation: operation) }
        let dataPath = (path as NSString).appendingPathComponent("data.mdb")
        let size = (try? FileManager.default.attributesOfItem(atPath: dataPath)[.size] as? Int) ?? nil
        if let limit = fileSizeLimit(), let size, rc == EFBIG || size + (1 << 20) > limit {
            return .fileSizeLimit(path: path, operation: operation, limit: limit)
        }
        if rc == EIO, let free = freeBytes(path), free < 16 << 20 { return .diskFull(path: path, operation: operation) }
        return .backend(path: path, operation: "LMDB \(operation)", reason: "\(lmdbMessage(rc)) (\(rc)): the device reported a write error")
    }
}

/// Bytes an unprivileged process may still write on the file system holding `path`.
func freeBytes(_ path: String) -> Int? {
    var st = statvfs()
    guard statvfs(path, &st) == 0 else { return nil }
    let (bytes, overflow) = Int(st.f_bavail).multipliedReportingOverflow(by: Int(st.f_frsize))
    return overflow ? .max : bytes
}

/// This process's file-size limit (`ulimit -f`) in bytes, or nil when there is none.
func fileSizeLimit() -> Int? {
    var limit = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }  // RLIM_INFINITY
    return Int(clamping: limit.rlim_cur)
}

/// A file-size limit kills a process with SIGXFSZ on the write that crosses it; ignored, the
/// write fails with EFBIG and the store reports it.
let ignoreFileSizeSignal: Void = { _ = signal(SIGXFSZ, SIG_IGN) }()

/// Thrown inside a write transaction when LMDB says MDB_MAP_FULL; `write` catches it and grows.
struct MapFull: Error {}

func lmdbMessage(_ code: Int32) -> String { String(cString: mdb_strerror(code)) }

func check(_ rc: Int32, path: String, _ operation: @autoclosure () -> String) throws {
    guard rc != 0 else { return }
    if rc == MDB_MAP_FULL { throw MapFull() }
    if rc == ENOSPC || rc == EDQUOT { throw StoreError.diskFull(path: path, operation: "LMDB \(operation())") }
    throw StoreError.backend(path: path, operation: "LMDB \(operation())", reason: "\(lmdbMessage(rc)) (\(rc))")
}

// MARK: - A pthread read-write lock

final class ReadWriteLock: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    init() { pthread_rwlock_init(lock, nil) }
    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func lockShared() { pthread_rwlock_rdlock(lock) }
    func lockExclusive() { pthread_rwlock_wrlock(lock) }
    func unlock() { pthread_rwlock_unlock(lock) }
}
