import CLMDB
import Foundation
import VoCoStore

// MARK: - The environment: one map, transactions, growth

/// An LMDB environment opened with MDB_NOTLS, so read transactions are not tied to threads and
/// many readers (threads or processes) run beside the one writer. Every transaction of this
/// process holds `resizeLock` shared; growing the map holds it exclusively, because LMDB may
/// only change the map size when no transaction of the process is active.
final class LMDBEnvironment: @unchecked Sendable {
    let path: String
    let readOnly: Bool
    /// The map never grows beyond this many bytes.
    let mapSizeLimit: Int
    private let env: OpaquePointer
    private let resizeLock = ReadWriteLock()

    init(path: String, readOnly: Bool, newMapSize: Int?, mapSizeLimit: Int, maxDatabases: Int) throws {
        self.path = path
        self.readOnly = readOnly
        self.mapSizeLimit = mapSizeLimit
        var handle: OpaquePointer?
        try check(mdb_env_create(&handle), path: path, "mdb_env_create")
        guard let handle else { throw StoreError.backend(path: path, operation: "LMDB mdb_env_create", reason: "no environment") }
        env = handle
        do {
            try check(mdb_env_set_maxdbs(env, MDB_dbi(maxDatabases)), path: path, "mdb_env_set_maxdbs")
            // Only a new environment gets a size here; an existing one keeps the size it recorded.
            if let newMapSize { try check(mdb_env_set_mapsize(env, newMapSize), path: path, "mdb_env_set_mapsize") }
            let flags = UInt32(MDB_NOTLS) | (readOnly ? UInt32(MDB_RDONLY) : 0)
            try check(mdb_env_open(env, path, flags, 0o664), path: path, "mdb_env_open")
        } catch {
            mdb_env_close(env)
            throw error
        }
    }

    deinit { mdb_env_close(env) }

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
        try check(mdb_env_set_mapsize(env, min(mapSizeLimit, size * 2)), path: path, "mdb_env_set_mapsize")
    }

    /// Another process grew the map: take its size.
    private func adoptGrownMap() throws {
        resizeLock.lockExclusive()
        defer { resizeLock.unlock() }
        try check(mdb_env_set_mapsize(env, 0), path: path, "mdb_env_set_mapsize(0)")
    }
}

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
