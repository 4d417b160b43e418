/// tokenizer.json `model` of type BPE: vocabulary, ranked merges, unknown token, byte fallback.
/// Tokenising one piece follows tokenizers' `BPE::merge_word` and `Word::merge_all`: split into
/// characters (or byte tokens, or <unk>), then apply merges lowest rank first with a heap over a
/// linked list of symbols, so a piece of n characters costs O(n log n), not O(n^2).
final class BPEModel: @unchecked Sendable {
    let vocab: [ExactString: UInt32]
    let idToToken: [UInt32: String]
    /// (left id << 32 | right id) -> (rank << 32 | merged id)
    let merges: MergeTable
    let unkId: UInt32?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let continuingSubwordPrefix: String?
    let endOfWordSuffix: String?
    /// Tokens of a single scalar, for the common path without prefix or suffix.
    private let scalarIds: ScalarIdTable
    /// [256] id of "<0xXX>", or nil
    private let byteIds: [UInt32?]

    // MARK: - Loading

    init(_ field: JSONField) throws {
        let path = field.path
        if field.has("type") {
            let type = try field["type"].string()
            guard type == "BPE" else {
                throw TokenizerError.unsupportedComponent(path: path, kind: "model", type: type, supported: ["BPE"])
            }
        }
        if !field["dropout"].isNull {
            let dropout = try field["dropout"].double()
            guard dropout == 0 else {
                throw TokenizerError.unsupportedOption(path: path, field: "model.dropout", value: "\(dropout) (BPE dropout is random; only null or 0 is supported)")
            }
        }
        var vocab: [ExactString: UInt32] = [:]
        for (token, idField) in try field["vocab"].members() {
            let id = try idField.int()
            guard id >= 0, id <= Int(UInt32.max) else { throw idField.fail("token id \(id) is not a 32-bit unsigned integer") }
            vocab[ExactString(token)] = UInt32(id) // a repeated token: the last id counts
        }
        self.vocab = vocab
        // Two tokens with one id: keep the byte-wise smaller, so every run picks the same.
        idToToken = Dictionary(vocab.map { ($0.value, $0.key.string) }) { a, b in
            a.utf8.lexicographicallyPrecedes(b.utf8) ? a : b
        }
        fuseUnk = try field["fuse_unk"].bool(default: false)
        byteFallback = try field["byte_fallback"].bool(default: false)
        ignoreMerges = try field["ignore_merges"].bool(default: false)
        continuingSubwordPrefix = try field["continuing_subword_prefix"].optionalString()
        endOfWordSuffix = try field["end_of_word_suffix"].optionalString()
        if let unk = try field["unk_token"].optionalString() {
            guard let id = vocab[ExactString(unk)] else { throw TokenizerError.unknownToken(path: path, field: "model.unk_token", token: unk) }
            unkId = id
        } else {
            unkId = nil
        }
        merges = MergeTable(try BPEModel.loadMerges(field["merges"], vocab: vocab, prefix: continuingSubwordPrefix ?? ""))
        scalarIds = ScalarIdTable(vocab)
        byteIds = (0..<256).map { vocab[ExactString(byteTokenName(UInt8($0)))] }
    }

    /// Merges as `"a b"` strings (lines starting with "#version" skipped) or `["a", "b"]` pairs.
    /// A repeated pair keeps its last rank, as tokenizers' hash map does.
    private static func loadMerges(_ field: JSONField, vocab: [ExactString: UInt32], prefix: String) throws -> [UInt64: UInt64] {
        var merges: [UInt64: UInt64] = [:]
        var rank: UInt64 = 0
        for entry in try field.array() {
            let a: String, b: String
            if case let .string(line) = entry.value {
                if line.hasPrefix("#version") { continue }
                // Split the bytes: a Character split would keep " " and a following combining
                // scalar (U+FE0F...) together.
                let parts = line.utf8.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw entry.fail("merge \"\(line)\" is not two tokens separated by one space") }
                (a, b) = (String(decoding: parts[0], as: UTF8.self), String(decoding: parts[1], as: UTF8.self))
            } else if case let .array(pair) = entry.value, pair.count == 2,
                      case let .string(left) = pair[0], case let .string(right) = pair[1] {
                (a, b) = (left, right)
            } else {
                throw entry.expected("a merge as \"a b\" or [\"a\", \"b\"]")
            }
            let merge = Int(rank) + 1
            guard let aId = vocab[ExactString(a)] else { throw TokenizerError.mergeTokenMissing(path: field.path, merge: merge, token: a) }
            guard let bId = vocab[ExactString(b)] else { throw TokenizerError.mergeTokenMissing(path: field.path, merge: merge, token: b) }
            // tokenizers drops the continuing-subword prefix's bytes from the right token.
            let bUTF8 = Array(b.utf8)
            guard prefix.utf8.count <= bUTF8.count,
                  let rest = String(validating: bUTF8[prefix.utf8.count...], as: UTF8.self) else {
                throw entry.fail("merge right token '\(b)' does not start with continuing_subword_prefix '\(prefix)'")
            }
            let merged = a + rest
            guard let newId = vocab[ExactString(merged)] else { throw TokenizerError.mergeTokenMissing(path: field.path, merge: merge, token: merged) }
            merges[UInt64(aId) << 32 | UInt64(bId)] = rank << 32 | UInt64(newId)
            rank += 1
        }
        return merges
    }

    // MARK: - Tokenising

    /// Token ids of one pre-tokenised piece.
    func tokenize(_ word: ArraySlice<Unicode.Scalar>, into ids: inout [UInt32]) {
        guard !word.isEmpty else { return }
        if ignoreMerges {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: word)
            if let id = vocab[ExactString(String(view))] {
                ids.append(id)
                return
            }
        }
        var symbols = initialSymbols(word)
        mergeAll(&symbols)
        for s in symbols where s.len != 0 { ids.append(s.id) }
    }

    /// tokenizers' `merge_word`: one symbol per character, or its byte tokens, or <unk>
    /// (runs of unknown characters fused into one <unk> when fuse_unk is set).
    private func initialSymbols(_ word: ArraySlice<Unicode.Scalar>) -> [BPESymbol] {
        var symbols: [BPESymbol] = []
        symbols.reserveCapacity(word.count)
        var unk: (id: UInt32, len: Int32)? = nil
        let plain = continuingSubwordPrefix == nil && endOfWordSuffix == nil
        let first = word.startIndex, last = word.endIndex - 1
        for i in word.indices {
            let scalar = word[i]
            let byteLength = Int32(UTF8.width(scalar))
            let id: UInt32?
            if plain {
                id = scalarIds[scalar]
            } else {
                var s = String(scalar)
                if i != first, let p = continuingSubwordPrefix { s = p + s }
                if i == last, let x = endOfWordSuffix { s += x }
                id = vocab[ExactString(s)]
            }
            if let id {
                if let u = unk { BPESymbol.append(u.id, u.len, to: &symbols); unk = nil }
                BPESymbol.append(id, byteLength, to: &symbols)
                continue
            }
            if byteFallback, let byteTokens = byteTokenIds(scalar, index: i, first: first, last: last, plain: plain) {
                for t in byteTokens { BPESymbol.append(t, 1, to: &symbols) }
                continue
            }
            if let unkId {
                if let u = unk {
                    if fuseUnk {
                        unk = (u.id, u.len + byteLength)
                        continue
                    }
                    BPESymbol.append(u.id, u.len, to: &symbols)
                }
                unk = (unkId, byteLength)
            }
        }
        if let u = unk { BPESymbol.append(u.id, u.len, to: &symbols) }
        return symbols
    }

    /// The byte tokens of a character (with prefix/suffix bytes if those apply), or nil if one is missing.
    private func byteTokenIds(_ scalar: Unicode.Scalar, index: Int, first: Int, last: Int, plain: Bool) -> [UInt32]? {
        var bytes: [UInt8] = []
        if !plain, index != first, let p = continuingSubwordPrefix { bytes += p.utf8 }
        forEachUTF8Byte(of: scalar) { bytes.append($0) }
        if !plain, index == last, let x = endOfWordSuffix { bytes += x.utf8 }
        var ids: [UInt32] = []
        for b in bytes {
            guard let id = byteIds[Int(b)] else { return nil }
            ids.append(id)
        }
        return ids
    }

    /// tokenizers' `Word::merge_all` without dropout: pop the lowest (rank, position) merge; skip
    /// entries made stale by earlier merges; after merging, queue the new pairs with both neighbours.
    private func mergeAll(_ symbols: inout [BPESymbol]) {
        var queue = MergeQueue()
        queue.reserve(symbols.count)
        for i in 0..<max(0, symbols.count - 1) {
            if let m = merges[pairKey(symbols[i].id, symbols[i + 1].id)] {
                queue.push(rank: UInt32(m >> 32), position: UInt32(i), newId: UInt32(truncatingIfNeeded: m))
            }
        }
        while let top = queue.pop() {
            let pos = Int(top.position)
            let current = symbols[pos]
            if current.len == 0 || current.next == -1 { continue }
            let nextPos = Int(current.next)
            let right = symbols[nextPos]
            guard let m = merges[pairKey(current.id, right.id)], UInt32(truncatingIfNeeded: m) == top.newId else { continue }

            symbols[pos].id = top.newId
            symbols[pos].len += right.len
            symbols[pos].next = right.next
            symbols[nextPos].len = 0
            if right.next > -1 && Int(right.next) < symbols.count {
                symbols[Int(right.next)].prev = Int32(pos)
            }
            let merged = symbols[pos]
            if merged.prev >= 0, let m = merges[pairKey(symbols[Int(merged.prev)].id, merged.id)] {
                queue.push(rank: UInt32(m >> 32), position: UInt32(merged.prev), newId: UInt32(truncatingIfNeeded: m))
            }
            if merged.next >= 0 && Int(merged.next) < symbols.count,
               let m = merges[pairKey(merged.id, symbols[Int(merged.next)].id)] {
                queue.push(rank: UInt32(m >> 32), position: UInt32(pos), newId: UInt32(truncatingIfNeeded: m))
            }
        }
    }
}

@inline(__always) private func pairKey(_ a: UInt32, _ b: UInt32) -> UInt64 { UInt64(a) << 32 | UInt64(b) }

/// "<0x0A>": the byte-fallback token of a byte (tokenizers formats it with `{:#04X}`).
func byteTokenName(_ byte: UInt8) -> String {
    let hex = Array("0123456789ABCDEF")
    return "<0x\(hex[Int(byte >> 4)])\(hex[Int(byte & 15)])>"
}

// MARK: - Symbols and the merge queue

/// One symbol of a word being merged: a doubly linked list inside an array; len 0 marks a
/// symbol merged into its left neighbour.
struct BPESymbol {
    var id: UInt32
    var prev: Int32
    var next: Int32
    var len: Int32 // bytes of text it covers

    static func append(_ id: UInt32, _ len: Int32, to symbols: inout [BPESymbol]) {
        let n = Int32(symbols.count)
        if n > 0 { symbols[Int(n) - 1].next = n }
        symbols.append(BPESymbol(id: id, prev: n - 1, next: -1, len: len))
    }
}

/// A binary min-heap of pending merges ordered by (rank, position), as tokenizers' `Merge` orders them.
struct MergeQueue {
    private struct Entry {
        var key: UInt64 // rank << 32 | position
        var newId: UInt32
    }
    private var heap: [Entry] = []

    mutating func reserve(_ n: Int) { heap.reserveCapacity(n) }

    mutating func push(rank: UInt32, position: UInt32, newId: UInt32) {
        let entry = Entry(key: UInt64(rank) << 32 | UInt64(position), newId: newId)
        heap.append(entry)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard entry.key < heap[parent].key else { break }
            heap[i] = heap[parent]
            i = parent
        }
        heap[i] = entry
    }

    mutating func pop() -> (position: UInt32, newId: UInt32)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        let n = heap.count
        if n > 0 {
            var i = 0
            while true {
                var child = 2 * i + 1
                if child >= n { break }
                if child + 1 < n && heap[child + 1].key < heap[child].key { child += 1 }
                guard heap[child].key < last.key else { break }
                heap[i] = heap[child]
                i = child
            }
            heap[i] = last
        }
        return (UInt32(truncatingIfNeeded: top.key), top.newId)
    }
}
