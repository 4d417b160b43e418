import Foundation

// MARK: - LMDB's file format (liblmdb 0.9, data version 1, 64-bit little-endian)
//
// What `data.mdb` holds, as mdb.c writes it, so that VoCo Store can check a file before LMDB
// maps it and read a damaged one without LMDB (LMDB has no page checksums: a damaged page can
// crash the process that walks it). Every page starts with a 16-byte header:
//   pgno u64 | pad u16 | flags u16 | lower u16, upper u16 (or, for overflow pages, pages u32)
// Pages 0 and 1 are meta pages; the one with the higher transaction id is current:
//   header | magic u32 | version u32 | address u64 | mapsize u64 | free DB (48) | main DB (48)
//          | last page u64 | txnid u64
// A database record (MDB_db, 48 bytes):
//   pad u32 (the page size, in the free DB of a meta page) | flags u16 | depth u16
//   | branch pages u64 | leaf pages u64 | overflow pages u64 | entries u64 | root u64
// Branch and leaf pages hold 2-byte node offsets from byte 16 (`lower` ends them) and nodes from
// `upper` to the page's end. A node: lo u16 | hi u16 | flags u16 | key size u16 | key | data.
// A branch node's child page is lo | hi << 16 | flags << 32; a leaf node's data size is
// lo | hi << 16, its data inline, or (flag BIGDATA) an 8-byte page number of overflow pages.
enum LMDBFormat {
    static let magic: UInt32 = 0xBEEF_C0DE
    static let dataVersion: UInt32 = 1
    static let pageHeaderSize = 16
    static let nodeHeaderSize = 8
    static let metaSize = 152  // header + MDB_meta
    static let databaseRecordSize = 48
    static let invalidPage = UInt64.max
    static let maxKeySize = 511
    /// LMDB's cursor stack: no tree is deeper.
    static let maxDepth = 32
    static let minPageSize = 512, maxPageSize = 32768

    // Page flags.
    static let branchPage: UInt16 = 0x01, leafPage: UInt16 = 0x02, overflowPage: UInt16 = 0x04, metaPage: UInt16 = 0x08
    // Node flags.
    static let bigData: UInt16 = 0x01, subDatabase: UInt16 = 0x02, duplicates: UInt16 = 0x04
    // Database flags (lmdb.h).
    static let reverseKey: UInt16 = 0x02, dupSort: UInt16 = 0x04, integerKey: UInt16 = 0x08

    /// How many pages an overflow value of `size` bytes takes (mdb.c OVPAGES).
    static func overflowPages(_ size: Int, pageSize: Int) -> Int { (pageHeaderSize - 1 + size) / pageSize + 1 }
}

/// What is wrong with a page or a meta page, by page number.
struct PageDamage: Error, CustomStringConvertible {
    let page: UInt64?
    let reason: String
    init(_ page: UInt64?, _ reason: String) {
        self.page = page
        self.reason = reason
    }

    var description: String { page.map { "page \($0): \(reason)" } ?? reason }
}

// MARK: - Bounds-checked reads

/// Little-endian integers at offsets of a byte buffer; every read is checked and throws
/// instead of trapping, whatever the offsets a damaged page gives.
struct ByteView {
    let bytes: UnsafeRawBufferPointer
    let page: UInt64?

    func check(_ offset: Int, _ count: Int) throws {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
            throw PageDamage(page, "an offset (\(offset) + \(count)) points outside the page")
        }
    }

    func u16(_ offset: Int) throws -> UInt16 {
        try check(offset, 2)
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    func u32(_ offset: Int) throws -> UInt32 {
        try check(offset, 4)
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    func u64(_ offset: Int) throws -> UInt64 {
        try check(offset, 8)
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    func slice(_ offset: Int, _ count: Int) throws -> UnsafeRawBufferPointer {
        try check(offset, count)
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }
}

// MARK: - Database records and meta pages

/// One B-tree's record (MDB_db): in a meta page for the free and main databases, in the main
/// database for each named one.
struct DatabaseRecord: Equatable {
    var pad: UInt32
    var flags: UInt16
    var depth: UInt16
    var branchPages, leafPages, overflowPages, entries, root: UInt64

    /// An empty tree (what a forensic read uses for a tree it cannot reach).
    static let empty = DatabaseRecord(pad: 0, flags: 0, depth: 0, branchPages: 0, leafPages: 0, overflowPages: 0, entries: 0, root: LMDBFormat.invalidPage)

    init(pad: UInt32, flags: UInt16, depth: UInt16, branchPages: UInt64, leafPages: UInt64, overflowPages: UInt64, entries: UInt64, root: UInt64) {
        (self.pad, self.flags, self.depth) = (pad, flags, depth)
        (self.branchPages, self.leafPages, self.overflowPages, self.entries, self.root) = (branchPages, leafPages, overflowPages, entries, root)
    }

    init(_ view: ByteView, at o: Int) throws {
        pad = try view.u32(o)
        flags = try view.u16(o + 4)
        depth = try view.u16(o + 6)
        branchPages = try view.u64(o + 8)
        leafPages = try view.u64(o + 16)
        overflowPages = try view.u64(o + 24)
        entries = try view.u64(o + 32)
        root = try view.u64(o + 40)
    }

    var isEmpty: Bool { root == LMDBFormat.invalidPage }
}

/// A meta page, parsed and checked on its own (magic, version, page size).
struct MetaPage: Equatable {
    let index: Int
    let mapSize: UInt64
    let free: DatabaseRecord
    let main: DatabaseRecord
    let lastPage: UInt64
    let txnid: UInt64
    var pageSize: Int { Int(free.pad) }

    /// A meta page of an empty store: what a forensic read of a file without a sound meta page
    /// reads (nothing).
    static let empty = MetaPage(index: 0, mapSize: 0, free: .empty, main: .empty, lastPage: 1, txnid: 0, pageSize: 4096)

    private init(index: Int, mapSize: UInt64, free: DatabaseRecord, main: DatabaseRecord, lastPage: UInt64, txnid: UInt64, pageSize: Int) {
        var free = free
        free.pad = UInt32(pageSize)
        (self.index, self.mapSize, self.free, self.main, self.lastPage, self.txnid) = (index, mapSize, free, main, lastPage, txnid)
    }

    /// `bytes`: the first `LMDBFormat.metaSize` bytes of page `index`.
    init(index: Int, bytes: UnsafeRawBufferPointer) throws {
        let view = ByteView(bytes: bytes, page: UInt64(index))
        self.index = index
        guard try view.u16(10) & LMDBFormat.metaPage != 0 else { throw PageDamage(UInt64(index), "not marked as a meta page") }
        guard try view.u32(16) == LMDBFormat.magic else { throw PageDamage(UInt64(index), "no LMDB magic number") }
        let version = try view.u32(20)
        guard version == LMDBFormat.dataVersion else {
            throw PageDamage(UInt64(index), "LMDB data format version \(version); this build reads version \(LMDBFormat.dataVersion)")
        }
        mapSize = try view.u64(32)
        free = try DatabaseRecord(view, at: 40)
        main = try DatabaseRecord(view, at: 88)
        lastPage = try view.u64(136)
        txnid = try view.u64(144)
        let size = Int(free.pad)
        guard size >= LMDBFormat.minPageSize, size <= LMDBFormat.maxPageSize, size & (size - 1) == 0 else {
            throw PageDamage(UInt64(index), "page size \(size) is not a power of two from \(LMDBFormat.minPageSize) to \(LMDBFormat.maxPageSize)")
        }
    }

    /// Problems of this meta page on its own: roots, depths and flags that cannot be.
    func problems() -> [String] {
        var out: [String] = []
        if lastPage < 1 || lastPage >= 1 << 40 { out.append("last page \(lastPage) is impossible") }
        for (name, db) in [("free", free), ("main", main)] where !db.isEmpty {
            if db.root < 2 || db.root > lastPage { out.append("the \(name) database's root page \(db.root) is outside pages 2...\(lastPage)") }
            if db.depth == 0 || Int(db.depth) > LMDBFormat.maxDepth { out.append("the \(name) database's depth \(db.depth) is impossible") }
        }
        if free.flags & LMDBFormat.integerKey == 0 || free.flags & (LMDBFormat.dupSort | LMDBFormat.reverseKey) != 0 {
            out.append("the free database's flags \(free.flags) are not LMDB's")
        }
        if main.flags & (LMDBFormat.dupSort | LMDBFormat.reverseKey | LMDBFormat.integerKey) != 0 {
            out.append("the main database's flags \(main.flags) are not LMDB's")
        }
        return out
    }
}
