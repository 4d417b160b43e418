import CLMDB
import Foundation
import VoCoStore

// MARK: - A snapshot read by VoCo Store's own page reader

/// The store's databases as of one meta page, read from a mapping of `data.mdb` by `LMDBTree`:
/// what a damaged page would make LMDB crash on is an error here (`StoreError.damagedPage`), or,
/// with `onDamage` set, a report and a skipped subtree. Database handles are the store's
/// `Databases` values, resolved by name through the main database.
final class LMDBSnapshot: LMDBKeyValueReads {
    let path: String
    let pages: LMDBPages
    let meta: MetaPage
    private let names: [MDB_dbi: String]
    private var trees: [MDB_dbi: LMDBTree] = [:]
    /// Set for tolerant walks (verify, salvage): damage is reported here and walks go on.
    var onDamage: ((_ database: String, _ damage: PageDamage) -> Void)?

    init(path: String, pages: LMDBPages, meta: MetaPage, names: [MDB_dbi: String]) {
        self.path = path
        self.pages = pages
        self.meta = meta
        self.names = names
    }

    var mainTree: LMDBTree { LMDBTree(pages: pages, record: meta.main, name: "main") }
    var freeTree: LMDBTree { LMDBTree(pages: pages, record: meta.free, name: "free") }

    /// The named database `db`; a missing one is damage (the main database lost its entry).
    func tree(_ db: MDB_dbi) throws -> LMDBTree {
        if let tree = trees[db] { return tree }
        guard let name = names[db] else { throw StoreError.backend(path: path, operation: "reading", reason: "unknown database handle \(db)") }
        let found: DatabaseRecord?
        do { found = try mainTree.subDatabase(named: name) } catch let damage as PageDamage {
            // A tolerant read goes on without the database (verify reports the damage).
            guard let onDamage else { throw StoreError.damagedPage(path: path, database: "main", page: damage.page, reason: damage.reason) }
            onDamage("main", damage)
            found = .empty
        }
        guard let record = found ?? (onDamage == nil ? nil : .empty) else {
            throw StoreError.damagedPage(path: path, database: name, page: nil, reason: "the main database has no entry for it")
        }
        let tree = LMDBTree(pages: pages, record: record, name: name)
        trees[db] = tree
        return tree
    }

    func name(_ db: MDB_dbi) -> String { names[db] ?? "\(db)" }

    /// Runs `body`, turning page damage into the store's error for `database`.
    func damageChecked<T>(_ database: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let damage as PageDamage {
            throw StoreError.damagedPage(path: path, database: database, page: damage.page, reason: damage.reason)
        }
    }

    // MARK: LMDBKeyValueReads

    func withValue<T>(_ db: MDB_dbi, _ key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> T) throws -> T {
        let tree = try tree(db)
        return try damageChecked(name(db)) { try tree.withValue(key, body) }
    }

    func contains(_ db: MDB_dbi, _ key: [UInt8]) throws -> Bool {
        let tree = try tree(db)
        return try damageChecked(name(db)) { try tree.contains(key) }
    }

    func scan(_ db: MDB_dbi, prefix: [UInt8], from start: [UInt8],
              _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws {
        let tree = try tree(db), name = name(db)
        let report = onDamage.map { onDamage in { (damage: PageDamage) in onDamage(name, damage) } }
        _ = try damageChecked(name) {
            try tree.walk(from: start, onDamage: report) { k, v in
                guard k.starts(with: prefix) else { return false }
                return try body(k, v)
            }
        }
    }

    func count(_ db: MDB_dbi) throws -> Int { Int(clamping: try tree(db).record.entries) }

    func firstKey(_ db: MDB_dbi, atOrAfter start: [UInt8]) throws -> [UInt8]? {
        var first: [UInt8]?
        try scan(db, prefix: [], from: start) { k, _ in
            first = Array(k)
            return false
        }
        return first
    }
}

extension LMDBTree {
    /// The record of named database `name` in the main database: a node flagged as a
    /// sub-database holding a 48-byte record; nil when there is no such key.
    func subDatabase(named name: String) throws -> DatabaseRecord? {
        guard let (page, node) = try findNode(Array(name.utf8)) else { return nil }
        guard node.flags & LMDBFormat.subDatabase != 0, node.flags & LMDBFormat.bigData == 0,
              node.dataSize == LMDBFormat.databaseRecordSize else {
            throw PageDamage(page.number, "the main database's entry for \(name) is not a database record")
        }
        return try DatabaseRecord(ByteView(bytes: try page.inlineData(node, count: node.dataSize), page: page.number), at: 0)
    }
}
