import Foundation

// MARK: - One image's cache

/// What the compression pass keeps of one image: every layer's K (before RoPE) and V of the
/// kept rows (the k VoCo rows, every row in `full` mode, the pooled row in `avgpool` mode),
/// and the position of the first kept row in that pass.
public struct VoCoCache: Sendable, Equatable {
    public let mode: VoCoMode
    public let layers: Int
    /// P', rows kept.
    public let rows: Int
    /// `kvHeads * headDim`.
    public let width: Int
    public let firstPosition: Int
    public var keys: [Float]  // [layers][rows][width], before RoPE
    public var values: [Float]  // [layers][rows][width]

    public init(mode: VoCoMode, layers: Int, rows: Int, width: Int, firstPosition: Int, keys: [Float], values: [Float]) throws {
        let count = layers * rows * width
        guard keys.count == count, values.count == count else {
            throw ModelError.invalidArgument("a cache of \(layers) layers x \(rows) rows x \(width) needs \(count) keys and values, got \(keys.count) and \(values.count)")
        }
        guard firstPosition >= 0 else { throw ModelError.invalidArgument("a cache's first position must be >= 0, got \(firstPosition)") }
        self.mode = mode
        self.layers = layers
        self.rows = rows
        self.width = width
        self.firstPosition = firstPosition
        self.keys = keys
        self.values = values
    }
}

// MARK: - Placing caches for a query

/// Positions of the placed caches and of the text (Schemas/model-format.md, "The query pass").
public struct CachePlacement: Sendable, Equatable {
    /// Position of each cache's first row.
    public let starts: [Int]
    /// Position of the first text token.
    public let textStart: Int

    public init(rows: [Int], firstPositions: [Int], layout: CacheLayout) {
        guard let base = firstPositions.first else {
            starts = []
            textStart = 0
            return
        }
        switch layout {
        case .sequential:
            var next = base
            starts = rows.map { r in defer { next += r }; return next }
            textStart = next
        case .shared:
            starts = firstPositions
            textStart = zip(firstPositions, rows).map { $0 + $1 }.max() ?? 0
        }
    }

    public init(caches: [VoCoCache], layout: CacheLayout) {
        self.init(rows: caches.map(\.rows), firstPositions: caches.map(\.firstPosition), layout: layout)
    }
}
