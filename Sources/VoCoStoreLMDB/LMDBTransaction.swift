import CLMDB
import VoCoStore

// MARK: - Reads of one snapshot, by LMDB or by VoCo Store's own page reader

/// What the store's reads need of a snapshot. `Transaction` does it with LMDB; `LMDBSnapshot`
/// reads the same pages itself, checking each one, for stores that may be damaged.
protocol LMDBKeyValueReads {
    var path: String { get }
    /// Runs `body` with the value under `key` (nil when there is none), valid only inside it.
    func withValue<T>(_ db: MDB_dbi, _ key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> T) throws -> T
    func contains(_ db: MDB_dbi, _ key: [UInt8]) throws -> Bool
    /// Visits entries in key order, from the first key >= `start`, while keys start with
    /// `prefix` and `body` returns true.
    func scan(_ db: MDB_dbi, prefix: [UInt8], from start: [UInt8],
              _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws
    func count(_ db: MDB_dbi) throws -> Int
    func firstKey(_ db: MDB_dbi, atOrAfter start: [UInt8]) throws -> [UInt8]?
}

extension LMDBKeyValueReads {
    /// A copy of the value under `key`.
    func getCopy(_ db: MDB_dbi, _ key: [UInt8]) throws -> [UInt8]? { try withValue(db, key) { $0.map { Array($0) } } }

    func scan(_ db: MDB_dbi, prefix: [UInt8] = [], _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws {
        try scan(db, prefix: prefix, from: prefix, body)
    }

    /// All keys starting with `prefix` (copied), for deleting while not iterating.
    func keys(_ db: MDB_dbi, prefix: [UInt8] = [], where keep: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool = { _, _ in true }) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        try scan(db, prefix: prefix) { k, v in
            if try keep(k, v) { out.append(Array(k)) }
            return true
        }
        return out
    }
}

// MARK: - Get, put, delete, scan inside one LMDB transaction

/// A transaction handed to a `read` or `write` body. Values returned by `get` and `scan` point
/// into the map and are valid only until the body returns.
struct Transaction: LMDBKeyValueReads {
    let txn: OpaquePointer
    let path: String

    func withValue<T>(_ db: MDB_dbi, _ key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> T) throws -> T {
        try body(try get(db, key))
    }

    func contains(_ db: MDB_dbi, _ key: [UInt8]) throws -> Bool { try get(db, key) != nil }

    func get(_ db: MDB_dbi, _ key: [UInt8]) throws -> UnsafeRawBufferPointer? {
        var value = MDB_val()
        let rc = key.withUnsafeBytes { k -> Int32 in
            var keyValue = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            return mdb_get(txn, db, &keyValue, &value)
        }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, path: path, "mdb_get")
        return UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
    }

    func put(_ db: MDB_dbi, _ key: [UInt8], _ value: [UInt8]) throws {
        let rc = key.withUnsafeBytes { k in
            value.withUnsafeBytes { v -> Int32 in
                var keyValue = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
                var dataValue = MDB_val(mv_size: v.count, mv_data: UnsafeMutableRawPointer(mutating: v.baseAddress))
                return mdb_put(txn, db, &keyValue, &dataValue, 0)
            }
        }
        if rc == MDB_TXN_FULL {
            throw StoreError.backend(path: path, operation: "LMDB mdb_put", reason: "too many changes in one transaction; write in smaller batches")
        }
        try check(rc, path: path, "mdb_put")
    }

    /// Deletes `key`; false when it was not there.
    @discardableResult
    func delete(_ db: MDB_dbi, _ key: [UInt8]) throws -> Bool {
        let rc = key.withUnsafeBytes { k -> Int32 in
            var keyValue = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
            return mdb_del(txn, db, &keyValue, nil)
        }
        if rc == MDB_NOTFOUND { return false }
        try check(rc, path: path, "mdb_del")
        return true
    }

    func scan(_ db: MDB_dbi, prefix: [UInt8], from start: [UInt8],
              _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, db, &cursor), path: path, "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val(), value = MDB_val()
        var rc: Int32 = start.withUnsafeBytes { p in
            if start.isEmpty { return mdb_cursor_get(cursor, &key, &value, MDB_FIRST) }
            key = MDB_val(mv_size: p.count, mv_data: UnsafeMutableRawPointer(mutating: p.baseAddress))
            return mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
        }
        while rc == 0 {
            let k = UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)
            guard k.starts(with: prefix) else { return }
            guard try body(k, UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)) else { return }
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try check(rc, path: path, "mdb_cursor_get") }
    }

    func count(_ db: MDB_dbi) throws -> Int {
        var stat = MDB_stat()
        try check(mdb_stat(txn, db, &stat), path: path, "mdb_stat")
        return stat.ms_entries
    }

    func firstKey(_ db: MDB_dbi, atOrAfter start: [UInt8]) throws -> [UInt8]? {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, db, &cursor), path: path, "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val(), value = MDB_val()
        let rc: Int32 = start.withUnsafeBytes { s in
            if start.isEmpty { return mdb_cursor_get(cursor, &key, &value, MDB_FIRST) }
            key = MDB_val(mv_size: s.count, mv_data: UnsafeMutableRawPointer(mutating: s.baseAddress))
            return mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
        }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, path: path, "mdb_cursor_get")
        return Array(UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size))
    }

    /// The last key of `db` that starts with `prefix` (for "next ordinal" and "next id").
    func lastKey(_ db: MDB_dbi, prefix: [UInt8]) throws -> [UInt8]? {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, db, &cursor), path: path, "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        // Seek to the first key after every key with this prefix, then step back one.
        var successor = prefix
        while let last = successor.last, last == 0xFF { successor.removeLast() }
        var key = MDB_val(), value = MDB_val()
        var rc: Int32
        if successor.isEmpty {
            rc = mdb_cursor_get(cursor, &key, &value, MDB_LAST)
        } else {
            successor[successor.count - 1] += 1
            rc = successor.withUnsafeBytes { s in
                key = MDB_val(mv_size: s.count, mv_data: UnsafeMutableRawPointer(mutating: s.baseAddress))
                return mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
            }
            rc = rc == 0 ? mdb_cursor_get(cursor, &key, &value, MDB_PREV) : mdb_cursor_get(cursor, &key, &value, MDB_LAST)
        }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, path: path, "mdb_cursor_get")
        let k = UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)
        return k.starts(with: prefix) ? Array(k) : nil
    }
}
