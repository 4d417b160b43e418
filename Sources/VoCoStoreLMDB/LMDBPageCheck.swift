import Foundation
import VoCoStore

// MARK: - Every page of a snapshot, checked

/// What LMDB's structure must be for reads to find every entry and for the next write not to
/// overwrite live data, checked page by page with the page reader: every tree (the main
/// database, each named one, the free list) walked whole; each page's header, bounds, key order
/// and depth; each database record's counts (entries, branch, leaf and overflow pages, depth)
/// against what its walk finds; no page used twice; the free list naming only pages that exist
/// and are not in use. A problem is a `VerifyFailure` naming the database and page.
struct LMDBPageCheck {
    let snapshot: LMDBSnapshot

    func run() -> [VerifyFailure] {
        var failures: [VerifyFailure] = []
        var reported = Set<String>()
        func fail(_ database: String, _ page: UInt64?, _ reason: String) {
            // A damaged page shared by several trees' paths (the main database's) is one failure.
            guard page == nil || reported.insert("\(page!) \(reason)").inserted else { return }
            failures.append(VerifyFailure(database: database, key: page.map { "page \($0)" } ?? "-", reason: reason))
        }
        let pages = snapshot.pages
        // One bit per page that exists in the file (pages past it are reported as damage).
        let known = Int(min(pages.lastPage + 1, UInt64(pages.mapping.count / pages.pageSize)))
        var used = [UInt8](repeating: 0, count: (known + 7) / 8)
        func mark(_ page: UInt64, _ database: String) {
            guard page < UInt64(known) else { return }
            let (byte, bit) = (Int(page / 8), UInt8(1) << (page % 8))
            if used[byte] & bit != 0 { fail(database, page, "the page is used twice") }
            used[byte] |= bit
        }

        /// Walks one tree whole and compares what it finds with its record.
        func check(_ tree: LMDBTree, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void = { _, _ in }) {
            var (branch, leaf, overflow, entries) = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            var damaged = false
            _ = try? tree.walk(onDamage: { damage in
                damaged = true
                fail(tree.name, damage.page, damage.reason)
            }, onPage: { event in
                switch event.kind {
                case .branch: branch += 1
                case .leaf: leaf += 1
                case .overflow: overflow += UInt64(event.pages)
                }
                for page in event.number..<(event.number + UInt64(event.pages)) { mark(page, tree.name) }
            }) { k, v in
                entries += 1
                body(k, v)
                return true
            }
            let r = tree.record
            guard !damaged else { return }  // the counts cannot agree; the damage says why
            let found = [("entries", r.entries, entries), ("branch pages", r.branchPages, branch),
                         ("leaf pages", r.leafPages, leaf), ("overflow pages", r.overflowPages, overflow)]
            for (what, recorded, walked) in found where recorded != walked {
                fail(tree.name, nil, "its record counts \(recorded) \(what) but a walk finds \(walked)")
            }
            if r.isEmpty, r.depth != 0 || r.entries != 0 { fail(tree.name, nil, "an empty tree with depth \(r.depth) and \(r.entries) entries") }
        }

        // The main database: one sub-database record per named database, nothing else.
        let main = snapshot.mainTree
        var names: [String] = []
        check(main) { k, _ in names.append(String(decoding: k, as: UTF8.self)) }
        let expected = Set(LMDBStore.databaseNames)
        for name in names where !expected.contains(name) { fail("main", nil, "an entry '\(name.prefix(40))' that is not a database of this store") }
        for name in LMDBStore.databaseNames {
            do {
                guard let record = try main.subDatabase(named: name) else {
                    fail(name, nil, "the main database has no entry for it")
                    continue
                }
                if record.flags != 0 { fail(name, nil, "its flags \(record.flags) are not the store's (0)") }
                check(LMDBTree(pages: pages, record: record, name: name))
            } catch let damage as PageDamage {
                fail(name, damage.page, damage.reason)
            } catch {
                fail(name, nil, "\(error)")
            }
        }

        // The free list: transaction id -> pages freed then. Those must exist and be unused.
        var free: [UInt64] = []
        check(snapshot.freeTree) { k, v in
            guard k.count == 8, let list = FreeList.pages(v) else {
                fail("free", nil, "an entry that is not transaction id -> page list")
                return
            }
            if k.loadUnaligned(as: UInt64.self) > snapshot.meta.txnid {
                fail("free", nil, "pages freed by transaction \(k.loadUnaligned(as: UInt64.self)), later than the snapshot's \(snapshot.meta.txnid)")
            }
            free += list
        }
        var badFree = 0
        for page in free {
            guard page >= 2, page <= pages.lastPage else {
                badFree += 1
                continue
            }
            if page < UInt64(known) {
                let (byte, bit) = (Int(page / 8), UInt8(1) << (page % 8))
                if used[byte] & bit != 0 { fail("free", page, "the free list names a page in use (the next write would overwrite it) or names it twice") }
                used[byte] |= bit
            }
        }
        if badFree > 0 { fail("free", nil, "the free list names \(badFree) page(s) outside pages 2...\(pages.lastPage)") }
        // Every page is in use or free: one that is neither was lost to a damaged list or tree.
        var unaccounted = 0
        for page in 2..<max(2, known) where used[page / 8] & (UInt8(1) << (page % 8)) == 0 { unaccounted += 1 }
        if unaccounted > 0 { fail("free", nil, "\(unaccounted) page(s) are neither in use nor in the free list") }
        return failures
    }
}
