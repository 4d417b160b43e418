/// Lookup tables on the encoding hot path, cheaper than Dictionary's SipHash.

/// Open-addressing hash map from a token pair (left << 32 | right) to (rank << 32 | merged id).
struct MergeTable {
    private var keys: [UInt64]   // [capacity]
    private var values: [UInt64] // [capacity] UInt64.max marks an empty slot
    private let mask: Int
    let count: Int

    init(_ merges: [UInt64: UInt64]) {
        var capacity = 16
        while capacity < merges.count * 2 { capacity *= 2 }
        keys = [UInt64](repeating: 0, count: capacity)
        values = [UInt64](repeating: .max, count: capacity)
        mask = capacity - 1
        count = merges.count
        for (k, v) in merges {
            var i = MergeTable.slot(k, mask)
            while values[i] != .max { i = (i + 1) & mask }
            keys[i] = k
            values[i] = v
        }
    }

    @inline(__always) private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    @inline(__always) subscript(_ key: UInt64) -> UInt64? {
        var i = MergeTable.slot(key, mask)
        while true {
            let v = values[i]
            if v == .max { return nil }
            if keys[i] == key { return v }
            i = (i + 1) & mask
        }
    }
}

/// Token id of each single-scalar token: a flat table for the Basic Multilingual Plane, a
/// dictionary for the rest.
struct ScalarIdTable {
    private var bmp: [UInt32]  // [65536] id + 1, 0 when absent
    private var astral: [UInt32: UInt32]

    init(_ vocab: [ExactString: UInt32]) {
        bmp = [UInt32](repeating: 0, count: 0x10000)
        astral = [:]
        for (token, id) in vocab {
            var it = token.string.unicodeScalars.makeIterator()
            guard let s = it.next(), it.next() == nil else { continue }
            if s.value < 0x10000 { bmp[Int(s.value)] = id &+ 1 } else { astral[s.value] = id }
        }
    }

    @inline(__always) subscript(_ scalar: Unicode.Scalar) -> UInt32? {
        if scalar.value < 0x10000 {
            let v = bmp[Int(scalar.value)]
            return v == 0 ? nil : v &- 1
        }
        return astral[scalar.value]
    }
}

/// A token string compared and hashed by its UTF-8 bytes, as Rust compares strings. Swift's own
/// String equality is canonical equivalence ("é" == "e\u{301}"), which would merge distinct tokens.
struct ExactString: Hashable {
    let string: String

    init(_ string: String) {
        var s = string
        s.makeContiguousUTF8()
        self.string = s
    }

    static func == (a: ExactString, b: ExactString) -> Bool { a.string.utf8.elementsEqual(b.string.utf8) }

    func hash(into hasher: inout Hasher) {
        var s = string
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
