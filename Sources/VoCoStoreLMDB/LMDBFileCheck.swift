import Foundation
import VoCoStore

// MARK: - Before LMDB opens a store

/// What LMDB would crash on, or misread, when it opens a store: checked from the files alone
/// and refused by name. LMDB maps `data.mdb` and trusts its meta pages; a file shorter than the
/// pages they name faults (SIGBUS) on the first read past its end.
enum LMDBFileCheck {
    enum State {
        /// No data.mdb: a new store, when creating is allowed.
        case absent
        /// A 0-byte data.mdb (a creation that stopped before writing anything).
        case empty
        /// A data.mdb whose meta pages and length were checked (with `strict`), or not.
        case present
    }

    /// `strict`: also refuse damaged meta pages and a truncated file.
    static func check(storePath: String, strict: Bool = true) throws -> State {
        let dataPath = (storePath as NSString).appendingPathComponent("data.mdb")
        var st = stat()
        guard stat(dataPath, &st) == 0 else {
            if errno == ENOENT { return .absent }
            throw StoreError.backend(path: storePath, operation: "stat data.mdb", reason: String(cString: strerror(errno)))
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw StoreError.notAStore(path: storePath, reason: "data.mdb is \(st.st_mode & S_IFMT == S_IFDIR ? "a directory" : "not a regular file")")
        }
        if st.st_size == 0 { return .empty }
        guard strict else { return .present }
        let file = try LMDBDataFile(storePath: storePath)
        // A writer committing meanwhile may leave the pair of meta pages between two states for
        // a moment: damage is what is still there after a few tries.
        for attempt in 1...5 {
            do {
                let mapping = try file.mapping()
                let meta = try currentMeta(LMDBDataFile.metas(in: mapping), storePath: storePath, fileSize: mapping.count)
                try checkLength(meta: meta, mapping: mapping, storePath: storePath)
                return .present
            } catch let error as StoreError where attempt < 5 {
                if case .damagedPage = error { usleep(20_000) } else { throw error }
            }
        }
        return .present
    }

    /// The meta page LMDB would use, when both meta pages are sound and agree.
    static func currentMeta(_ metas: [Result<MetaPage, PageDamage>], storePath: String, fileSize: Int) throws -> MetaPage {
        switch (metas[0], metas[1]) {
        case let (.failure(first), .failure):
            throw notLMDB(first, storePath: storePath, fileSize: fileSize)
                ?? StoreError.damagedPage(path: storePath, database: "meta", page: first.page, reason: first.reason)
        case let (.failure(damage), .success), let (.success, .failure(damage)):
            throw StoreError.damagedPage(path: storePath, database: "meta", page: damage.page, reason: damage.reason)
        case let (.success(m0), .success(m1)):
            if let problem = disagreement(m0, m1) {
                throw StoreError.damagedPage(path: storePath, database: "meta", page: nil, reason: problem)
            }
            let current = m1.txnid > m0.txnid ? m1 : m0
            if let problem = current.problems().first {
                throw StoreError.damagedPage(path: storePath, database: "meta", page: UInt64(current.index), reason: problem)
            }
            return current
        }
    }

    /// The error for a file whose first meta page does not parse, when it is not an LMDB file at
    /// all (no LMDB magic where the first meta page has it); nil when it is one, damaged.
    static func notLMDB(_ first: PageDamage, storePath: String, fileSize: Int) -> StoreError? {
        guard first.reason.contains("magic") || first.reason.contains("not marked") || first.reason.contains("ends before") else { return nil }
        let data = FileManager.default.contents(atPath: (storePath as NSString).appendingPathComponent("data.mdb"))?.prefix(20) ?? Data()
        let magic = data.count == 20 && data.suffix(4).elementsEqual(withUnsafeBytes(of: LMDBFormat.magic.littleEndian) { Array($0) })
        if magic, first.reason.contains("ends before") {
            return StoreError.damagedPage(path: storePath, database: "", page: nil, reason: "data.mdb is \(fileSize) bytes, shorter than its first meta page: the file was truncated")
        }
        return magic ? nil : StoreError.notAStore(path: storePath, reason: "data.mdb (\(fileSize) bytes) is not an LMDB file: \(first.reason)")
    }

    /// Why two meta pages cannot both be right, or nil. LMDB writes meta page `txnid % 2` at
    /// every commit, so the two hold consecutive transaction ids (or both 0, when new).
    static func disagreement(_ m0: MetaPage, _ m1: MetaPage) -> String? {
        if m0.pageSize != m1.pageSize { return "the meta pages give page sizes \(m0.pageSize) and \(m1.pageSize)" }
        if m0.txnid == 0, m1.txnid == 0 { return nil }
        let consecutive = m0.txnid & 1 == 0 && m1.txnid & 1 == 1 && (m0.txnid &+ 1 == m1.txnid || m1.txnid &+ 1 == m0.txnid)
        return consecutive ? nil : "the meta pages hold transaction ids \(m0.txnid) and \(m1.txnid), which no commit leaves: one of them is damaged"
    }

    /// data.mdb must hold every page up to the meta's last page, except pages that are free
    /// (LMDB does not write pages it allocated and freed in one transaction).
    static func checkLength(meta: MetaPage, mapping: FileMapping, storePath: String) throws {
        if let reason = truncation(meta: meta, mapping: mapping) {
            throw StoreError.damagedPage(path: storePath, database: "", page: nil, reason: reason)
        }
    }

    /// Why the file is too short for `meta`, or nil.
    static func truncation(meta: MetaPage, mapping: FileMapping) -> String? {
        let needed = (Int(meta.lastPage) + 1) * meta.pageSize  // lastPage < 2^40: checked by problems()
        guard mapping.count < needed else { return nil }
        let firstMissing = UInt64(mapping.count / meta.pageSize)
        let truncated = "data.mdb is \(mapping.count) bytes, but its pages run to page \(meta.lastPage) (\(needed) bytes): the file was truncated"
        guard meta.lastPage - firstMissing < 1 << 20 else { return truncated }
        var missing = Set(firstMissing...meta.lastPage)
        do {
            let pages = try LMDBPages(mapping: mapping, meta: meta)
            try LMDBTree(pages: pages, record: meta.free, name: "free").walk { _, value in
                for page in FreeList.pages(value) ?? [] { missing.remove(page) }
                return !missing.isEmpty
            }
        } catch { return truncated }
        return missing.isEmpty ? nil : truncated
    }
}

/// A free-list entry's value: a count, then that many page numbers (native 64-bit words).
enum FreeList {
    static func pages(_ value: UnsafeRawBufferPointer) -> [UInt64]? {
        guard value.count >= 8, value.count % 8 == 0 else { return nil }
        let count = value.loadUnaligned(as: UInt64.self)
        guard count == UInt64(value.count / 8 - 1) else { return nil }
        return (1..<(value.count / 8)).map { value.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self) }
    }
}

// MARK: - lock.mdb, allocated before LMDB maps it

/// LMDB sizes a new lock.mdb with ftruncate and then writes it through a mapping: on a full file
/// system the first write to that mapping faults (SIGBUS). Allocating its blocks first turns
/// that into an error ("no space left") before LMDB touches it.
enum LockFilePreparation {
    /// LMDB's lock file for its default 126 readers: (126 - 1) * 64 + 192 bytes.
    static let size = 8192

    static func prepare(storePath: String, readOnly: Bool) throws {
        let lockPath = (storePath as NSString).appendingPathComponent("lock.mdb")
        let existed = FileManager.default.fileExists(atPath: lockPath)
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o664)
        guard fd >= 0 else { return }  // LMDB reports it (or, reading, goes on without it)
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG,
              Int(st.st_size) < size || Int(st.st_blocks) * 512 < min(Int(st.st_size), size) else {
            close(fd)
            return
        }
        let rc = posix_fallocate(fd, 0, off_t(max(size, Int(st.st_size))))
        close(fd)
        guard rc == ENOSPC || rc == EDQUOT || rc == EFBIG else { return }
        if !existed { unlink(lockPath) }
        if rc == EFBIG { throw StoreError.fileSizeLimit(path: storePath, operation: "creating lock.mdb", limit: fileSizeLimit() ?? 0) }
        throw StoreError.diskFull(path: storePath, operation: "creating lock.mdb")
    }
}
