import Foundation
import VoCoStore

// MARK: - data.mdb, mapped read-only by VoCo Store itself

/// A read-only mapping of `data.mdb` as it was when mapped. Every read through it is checked
/// against `count`, so a page number or size from a damaged page cannot reach past the file's
/// end (where a mapping faults with SIGBUS) or past the mapping.
final class FileMapping: @unchecked Sendable {
    let base: UnsafeRawPointer?
    let count: Int

    init(fd: Int32, count: Int) throws {
        self.count = count
        guard count > 0 else {
            base = nil
            return
        }
        let address = mmap(nil, count, PROT_READ, MAP_SHARED, fd, 0)
        guard let address, address != MAP_FAILED else {
            throw PageDamage(nil, "cannot map data.mdb: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(address)
    }

    deinit { if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) } }

    /// `count` bytes from `offset`, or nil when they are not all in the file.
    func bytes(_ offset: Int, _ length: Int) -> UnsafeRawBufferPointer? {
        guard let base, offset >= 0, length >= 0, offset <= count, length <= count - offset else { return nil }
        return UnsafeRawBufferPointer(start: base + offset, count: length)
    }
}

/// `data.mdb` of one store, opened read-only. `mapping()` maps it again when it has grown (a
/// writer appended pages); a mapping stays valid for as long as anyone holds it.
final class LMDBDataFile: @unchecked Sendable {
    let storePath: String
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var current: FileMapping?

    init(storePath: String) throws {
        self.storePath = storePath
        path = (storePath as NSString).appendingPathComponent("data.mdb")
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw StoreError.backend(path: storePath, operation: "opening data.mdb", reason: String(cString: strerror(code)))
        }
    }

    deinit { close(fd) }

    /// The file's size now.
    func size() throws -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw StoreError.backend(path: storePath, operation: "stat data.mdb", reason: String(cString: strerror(errno)))
        }
        return Int(st.st_size)
    }

    /// A mapping of the whole file as it is now.
    func mapping() throws -> FileMapping {
        let size = try self.size()
        return try lock.withLock {
            if let current, current.count == size { return current }
            do {
                let mapping = try FileMapping(fd: fd, count: size)
                current = mapping
                return mapping
            } catch let damage as PageDamage {
                throw StoreError.backend(path: storePath, operation: "mapping data.mdb", reason: damage.reason)
            }
        }
    }

    // MARK: Meta pages

    /// Both meta pages as parsed from `mapping` (the second one sits one page size, given by the
    /// first, after it; when the first is unreadable, at each possible page size in turn).
    static func metas(in mapping: FileMapping) -> [Result<MetaPage, PageDamage>] {
        let first = meta(in: mapping, index: 0, offset: 0)
        var sizes = [Int]()
        if case let .success(meta) = first { sizes = [meta.pageSize] } else {
            sizes = Array(sequence(first: LMDBFormat.minPageSize) { $0 < LMDBFormat.maxPageSize ? $0 * 2 : nil })
        }
        var second: Result<MetaPage, PageDamage> = .failure(PageDamage(1, "not found"))
        for size in sizes {
            second = meta(in: mapping, index: 1, offset: size)
            if case .success = second { break }
        }
        return [first, second]
    }

    /// A meta page as one consistent copy: a writer rewrites a meta page in place at every
    /// commit, so a read while it does may see half of each; two equal reads in a row are whole.
    private static func meta(in mapping: FileMapping, index: Int, offset: Int) -> Result<MetaPage, PageDamage> {
        guard let bytes = mapping.bytes(offset, LMDBFormat.metaSize) else {
            return .failure(PageDamage(UInt64(index), "data.mdb ends before meta page \(index) (\(mapping.count) bytes)"))
        }
        var copy = Array(bytes)
        for _ in 0..<100 {
            let again = Array(bytes)
            if again == copy { break }
            copy = again
            usleep(100)
        }
        return copy.withUnsafeBytes { stable in
            Result { try MetaPage(index: index, bytes: stable) }.mapError { $0 as? PageDamage ?? PageDamage(UInt64(index), "\($0)") }
        }
    }
}

// MARK: - Pages of one snapshot

/// The pages of one snapshot: a mapping, its page size, and the last page its meta names.
struct LMDBPages {
    let mapping: FileMapping
    let pageSize: Int
    let lastPage: UInt64

    init(mapping: FileMapping, meta: MetaPage) throws {
        guard meta.lastPage >= 1, meta.lastPage < 1 << 40 else { throw PageDamage(UInt64(meta.index), "last page \(meta.lastPage) is impossible") }
        self.mapping = mapping
        pageSize = meta.pageSize
        lastPage = meta.lastPage
    }

    /// Page `number` as a bounds-checked view; damage when it is past the last page or the file.
    func page(_ number: UInt64) throws -> PageView {
        guard number >= 2, number <= lastPage else {
            throw PageDamage(number, "page number outside pages 2...\(lastPage)")
        }
        let (offset, overflow) = Int(number).multipliedReportingOverflow(by: pageSize)
        guard !overflow, let bytes = mapping.bytes(offset, pageSize) else {
            throw PageDamage(number, "lies past the end of data.mdb (\(mapping.count) bytes): the file is truncated")
        }
        return try PageView(number: number, view: ByteView(bytes: bytes, page: number))
    }

    /// `count` bytes of the overflow pages that start at page `number` (after its header).
    func overflowValue(_ number: UInt64, count: Int) throws -> (bytes: UnsafeRawBufferPointer, pages: Int) {
        guard number >= 2, number <= lastPage else {
            throw PageDamage(number, "overflow page number outside pages 2...\(lastPage)")
        }
        let (offset, overflow) = Int(number).multipliedReportingOverflow(by: pageSize)
        guard !overflow, let header = mapping.bytes(offset, LMDBFormat.pageHeaderSize) else {
            throw PageDamage(number, "lies past the end of data.mdb (\(mapping.count) bytes): the file is truncated")
        }
        let view = ByteView(bytes: header, page: number)
        guard try view.u64(0) == number else { throw PageDamage(number, "its header names page \(try view.u64(0))") }
        guard try view.u16(10) == LMDBFormat.overflowPage else {
            throw PageDamage(number, "a value's overflow page is not marked as one (flags \(try view.u16(10)))")
        }
        let pages = Int(try view.u32(12))
        let needed = LMDBFormat.overflowPages(count, pageSize: pageSize)
        guard pages >= needed, UInt64(pages) <= lastPage - number + 1 else {
            throw PageDamage(number, "\(pages) overflow pages cannot hold a \(count)-byte value within pages ...\(lastPage)")
        }
        guard let bytes = mapping.bytes(offset + LMDBFormat.pageHeaderSize, count) else {
            throw PageDamage(number, "a \(count)-byte value runs past the end of data.mdb (\(mapping.count) bytes): the file is truncated")
        }
        return (bytes, pages)
    }
}

/// A branch or leaf page: its header checked, its nodes reachable by index.
struct PageView {
    let number: UInt64
    let view: ByteView
    let flags: UInt16
    let count: Int

    var isLeaf: Bool { flags == LMDBFormat.leafPage }

    init(number: UInt64, view: ByteView) throws {
        self.number = number
        self.view = view
        let stored = try view.u64(0)
        guard stored == number else { throw PageDamage(number, "its header names page \(stored)") }
        flags = try view.u16(10)
        guard flags == LMDBFormat.branchPage || flags == LMDBFormat.leafPage else {
            throw PageDamage(number, "flags \(flags) are neither a branch nor a leaf page's")
        }
        let lower = Int(try view.u16(12)), upper = Int(try view.u16(14))
        guard lower >= LMDBFormat.pageHeaderSize, lower & 1 == 0, lower <= upper, upper <= view.bytes.count else {
            throw PageDamage(number, "free-space bounds \(lower)..<\(upper) are impossible")
        }
        count = (lower - LMDBFormat.pageHeaderSize) / 2
        guard count > 0 else { throw PageDamage(number, "a \(flags == LMDBFormat.leafPage ? "leaf" : "branch") page without entries") }
    }

    /// Node `index`: its flags, key and the two halves of its size or page number.
    func node(_ index: Int) throws -> NodeView {
        let offset = Int(try view.u16(LMDBFormat.pageHeaderSize + 2 * index))
        let upper = Int(try view.u16(14))
        guard offset >= upper, offset <= view.bytes.count - LMDBFormat.nodeHeaderSize else {
            throw PageDamage(number, "node \(index) lies outside the page's node area")
        }
        let keySize = Int(try view.u16(offset + 6))
        guard keySize <= LMDBFormat.maxKeySize else { throw PageDamage(number, "node \(index) has a \(keySize)-byte key") }
        let key = try view.slice(offset + LMDBFormat.nodeHeaderSize, keySize)
        return NodeView(page: number, index: index, offset: offset, lo: try view.u16(offset), hi: try view.u16(offset + 2),
                        flags: try view.u16(offset + 4), key: key)
    }

    /// The inline data of a leaf node (`count` bytes after its key).
    func inlineData(_ node: NodeView, count: Int) throws -> UnsafeRawBufferPointer {
        do { return try view.slice(node.offset + LMDBFormat.nodeHeaderSize + node.key.count, count) } catch {
            throw PageDamage(number, "node \(node.index)'s \(count)-byte value runs past the page")
        }
    }
}

/// One node of a page.
struct NodeView {
    let page: UInt64
    let index: Int
    let offset: Int
    let lo, hi, flags: UInt16
    let key: UnsafeRawBufferPointer

    /// A branch node's child.
    var child: UInt64 { UInt64(lo) | UInt64(hi) << 16 | UInt64(flags) << 32 }
    /// A leaf node's value size.
    var dataSize: Int { Int(lo) | Int(hi) << 16 }
}
