import Foundation

// MARK: - One B-tree of a snapshot, read without LMDB

/// Reads one database's B-tree from mapped pages, checking everything it relies on: page
/// headers, node bounds, depth, key order within a page and against the parent's separators,
/// overflow pages. Damage is thrown as `PageDamage` (or, in a tolerant walk, reported to
/// `onDamage` and the damaged subtree skipped), never met with a fault or a trap.
struct LMDBTree {
    let pages: LMDBPages
    let record: DatabaseRecord
    /// The database's name, for messages.
    let name: String

    /// What a full walk sees, for the structure check.
    struct PageEvent {
        enum Kind { case branch, leaf, overflow }
        let kind: Kind
        let number: UInt64
        /// Overflow runs span several pages.
        let pages: Int
        let depth: Int
    }

    var integerKeys: Bool { record.flags & LMDBFormat.integerKey != 0 }

    /// LMDB's order: bytes, then length (mdb_cmp_memn); for INTEGERKEY databases (the free
    /// database) native unsigned integers.
    func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        if integerKeys, a.count == 8, b.count == 8 {
            let x = a.loadUnaligned(as: UInt64.self), y = b.loadUnaligned(as: UInt64.self)
            return x < y ? -1 : (x > y ? 1 : 0)
        }
        let n = min(a.count, b.count)
        if n > 0, let pa = a.baseAddress, let pb = b.baseAddress {
            let c = memcmp(pa, pb, n)
            if c != 0 { return c < 0 ? -1 : 1 }
        }
        return a.count < b.count ? -1 : (a.count > b.count ? 1 : 0)
    }

    // MARK: Lookups

    /// Runs `body` with the value stored under `key` (nil when there is none).
    func withValue<T>(_ key: [UInt8], _ body: (UnsafeRawBufferPointer?) throws -> T) throws -> T {
        guard let (page, node) = try findNode(key) else { return try body(nil) }
        return try body(try value(of: node, in: page))
    }

    /// Whether `key` is stored (its value is not read).
    func contains(_ key: [UInt8]) throws -> Bool { try findNode(key) != nil }

    /// The leaf page and node holding `key`, or nil.
    func findNode(_ key: [UInt8]) throws -> (PageView, NodeView)? {
        guard !record.isEmpty else { return nil }
        return try key.withUnsafeBytes { k -> (PageView, NodeView)? in
            var number = record.root
            for depth in 1...Int(max(1, min(record.depth, UInt16(LMDBFormat.maxDepth)))) {
                let page = try pages.page(number)
                if page.isLeaf {
                    guard depth == Int(record.depth) else { throw PageDamage(number, "a leaf at depth \(depth) of a \(record.depth)-deep tree") }
                    let index = try lowerBound(page, k)
                    guard index < page.count else { return nil }
                    let node = try page.node(index)
                    return compare(node.key, k) == 0 ? (page, node) : nil
                }
                number = try page.node(try childIndex(page, k)).child
            }
            throw PageDamage(number, "the \(name) tree is deeper than its record's depth \(record.depth)")
        }
    }

    /// The first leaf index whose key is >= `key`.
    private func lowerBound(_ page: PageView, _ key: UnsafeRawBufferPointer) throws -> Int {
        var (low, high) = (0, page.count)
        while low < high {
            let mid = (low + high) / 2
            if compare(try page.node(mid).key, key) < 0 { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// The branch index whose subtree holds `key`: the last separator <= key (index 0's key is
    /// never compared: LMDB leaves it empty).
    private func childIndex(_ page: PageView, _ key: UnsafeRawBufferPointer) throws -> Int {
        var (low, high) = (1, page.count)
        while low < high {
            let mid = (low + high) / 2
            if compare(try page.node(mid).key, key) <= 0 { low = mid + 1 } else { high = mid }
        }
        return low - 1
    }

    /// A leaf node's value: inline, or on its overflow pages.
    func value(of node: NodeView, in page: PageView) throws -> UnsafeRawBufferPointer {
        try valueAndPages(of: node, in: page).bytes
    }

    private func valueAndPages(of node: NodeView, in page: PageView) throws -> (bytes: UnsafeRawBufferPointer, overflow: (UInt64, Int)?) {
        if node.flags & LMDBFormat.duplicates != 0 {
            throw PageDamage(page.number, "node \(node.index) holds duplicates, which no database of this store has")
        }
        if node.flags & LMDBFormat.bigData == 0 { return (try page.inlineData(node, count: node.dataSize), nil) }
        let pointer = try page.inlineData(node, count: 8)
        let first = pointer.loadUnaligned(as: UInt64.self)
        let (bytes, count) = try pages.overflowValue(UInt64(littleEndian: first), count: node.dataSize)
        return (bytes, (UInt64(littleEndian: first), count))
    }

    // MARK: Walks

    /// Visits entries in key order from the first key >= `start`, until `body` returns false.
    /// Without `onDamage`, damage is thrown; with it, each damaged subtree is reported and
    /// skipped, and the walk goes on. `onPage` sees every page the walk reaches (for the
    /// structure check). Returns false when `body` stopped the walk.
    @discardableResult
    func walk(from start: [UInt8] = [], onDamage: ((PageDamage) -> Void)? = nil, onPage: ((PageEvent) -> Void)? = nil,
              _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws -> Bool {
        guard !record.isEmpty else { return true }
        guard record.depth >= 1, Int(record.depth) <= LMDBFormat.maxDepth else {
            let damage = PageDamage(record.root, "the \(name) tree's depth \(record.depth) is impossible")
            guard let onDamage else { throw damage }
            onDamage(damage)
            return true
        }
        var seen = Set<UInt64>()
        return try start.withUnsafeBytes { s in
            try visit(record.root, depth: 1, low: nil, high: nil, start: start.isEmpty ? nil : s, seen: &seen,
                      onDamage: onDamage, onPage: onPage, body)
        }
    }

    private func visit(_ number: UInt64, depth: Int, low: UnsafeRawBufferPointer?, high: UnsafeRawBufferPointer?,
                       start: UnsafeRawBufferPointer?, seen: inout Set<UInt64>,
                       onDamage: ((PageDamage) -> Void)?, onPage: ((PageEvent) -> Void)?,
                       _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws -> Bool {
        let page: PageView
        do {
            guard seen.insert(number).inserted else { throw PageDamage(number, "reached twice in the \(name) tree") }
            page = try pages.page(number)
            if page.isLeaf != (depth == Int(record.depth)) {
                throw PageDamage(number, "a \(page.isLeaf ? "leaf" : "branch") page at depth \(depth) of the \(record.depth)-deep \(name) tree")
            }
        } catch let damage as PageDamage {
            guard let onDamage else { throw damage }
            onDamage(damage)
            return true
        }
        onPage?(PageEvent(kind: page.isLeaf ? .leaf : .branch, number: number, pages: 1, depth: depth))
        // The page's own keys: in order, and within the bounds its parent gives.
        var previous: UnsafeRawBufferPointer?
        let nodes: [NodeView]
        do {
            nodes = try (0..<page.count).map { try page.node($0) }
            for node in nodes where page.isLeaf || node.index > 0 {
                if let previous, compare(previous, node.key) >= 0 { throw PageDamage(number, "keys out of order at node \(node.index)") }
                if let low, compare(node.key, low) < 0 { throw PageDamage(number, "key of node \(node.index) sorts before its parent's separator") }
                if let high, compare(node.key, high) >= 0 { throw PageDamage(number, "key of node \(node.index) sorts after the next separator") }
                previous = node.key
            }
        } catch let damage as PageDamage {
            guard let onDamage else { throw damage }
            onDamage(damage)
            return true
        }
        if page.isLeaf {
            for node in nodes {
                if let start, compare(node.key, start) < 0 { continue }
                let value: UnsafeRawBufferPointer
                do {
                    let (bytes, overflow) = try valueAndPages(of: node, in: page)
                    if let (first, count) = overflow { onPage?(PageEvent(kind: .overflow, number: first, pages: count, depth: depth)) }
                    value = bytes
                } catch let damage as PageDamage {
                    guard let onDamage else { throw damage }
                    onDamage(damage)
                    continue
                }
                guard try body(node.key, value) else { return false }
            }
            return true
        }
        for node in nodes {
            let next = node.index + 1 < nodes.count ? nodes[node.index + 1].key : high
            // Skip children whose keys all sort before `start`.
            if let start, let next, compare(next, start) <= 0 { continue }
            let childLow = node.index == 0 ? low : node.key
            guard try visit(node.child, depth: depth + 1, low: childLow, high: next, start: start, seen: &seen,
                            onDamage: onDamage, onPage: onPage, body) else { return false }
        }
        return true
    }
}
