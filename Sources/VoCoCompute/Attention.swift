import Foundation

// MARK: - Scaled dot-product attention over blocks of rows

/// Head layout shared by every block of one attention call.
public struct AttentionShape: Sendable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    public let scale: Float

    public init(heads: Int, kvHeads: Int, headDim: Int, scale: Float? = nil) {
        precondition(kvHeads > 0 && heads % kvHeads == 0, "heads \(heads) must be a multiple of kvHeads \(kvHeads)")
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.scale = scale ?? 1 / Float(headDim).squareRoot()
    }
}

/// One sequence's queries against its keys and values (an image in a batch, or a query).
public struct AttentionBlock {
    /// `[queryCount][heads*headDim]`, row stride `heads*headDim`.
    public var queries: UnsafePointer<Float>
    /// `[keyCount][kvHeads*headDim]`, row stride `kvHeads*headDim`.
    public var keys: UnsafePointer<Float>
    public var values: UnsafePointer<Float>
    /// `[queryCount][heads*headDim]`.
    public var output: UnsafeMutablePointer<Float>
    public var queryCount: Int
    public var keyCount: Int
    /// Causal mask: query `i` sees keys `0 ... causalOffset + i`; `nil` sees every key.
    public var causalOffset: Int?

    public init(queries: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                output: UnsafeMutablePointer<Float>, queryCount: Int, keyCount: Int, causalOffset: Int?) {
        self.queries = queries
        self.keys = keys
        self.values = values
        self.output = output
        self.queryCount = queryCount
        self.keyCount = keyCount
        self.causalOffset = causalOffset
    }
}

public enum Attention {
    /// Scratch floats `run` needs for these blocks (reserve it once, outside hot loops).
    public static func scratchCount(maxQueries: Int, maxKeys: Int, threads: ComputeThreads) -> Int {
        threads.count * maxQueries * maxKeys
    }

    /// Softmax(Q Kᵀ · scale + mask) V for every block and query head; query head `h` reads KV
    /// head `h / (heads / kvHeads)`. Blocks × heads are spread over the workers.
    public static func run(_ blocks: UnsafeBufferPointer<AttentionBlock>, shape: AttentionShape,
                           multiplier: MatrixMultiplier, threads: ComputeThreads, scratch: ScratchBuffer) {
        var maxQueries = 0, maxKeys = 0
        for b in blocks { maxQueries = max(maxQueries, b.queryCount); maxKeys = max(maxKeys, b.keyCount) }
        let perWorker = maxQueries * maxKeys
        let scores = scratch.reserve(threads.count * perWorker)  // [workers][maxQueries][maxKeys]
        let d = shape.headDim
        let qStride = shape.heads * d, kvStride = shape.kvHeads * d
        let group = shape.heads / shape.kvHeads
        threads.forEach(blocks.count * shape.heads, cost: 2 * blocks.count * shape.heads * perWorker * d) { item, worker in
            let block = blocks[item / shape.heads]
            let h = item % shape.heads, kvh = h / group
            let n = block.queryCount, m = block.keyCount
            guard n > 0 else { return }
            let s = scores + worker * perWorker  // [n][m]
            multiplier.gemm(m: n, n: m, k: d, alpha: shape.scale,
                            a: block.queries + h * d, lda: qStride,
                            b: block.keys + kvh * d, ldb: kvStride, bTransposed: true,
                            beta: 0, c: s, ldc: m)
            for i in 0..<n {
                let visible = block.causalOffset.map { min(m, $0 + i + 1) } ?? m
                Kernels.softmax(s + i * m, count: visible, total: m)
            }
            multiplier.gemm(m: n, n: d, k: m, alpha: 1,
                            a: s, lda: m, b: block.values + kvh * d, ldb: kvStride, bTransposed: false,
                            beta: 0, c: block.output + h * d, ldc: qStride)
        }
    }
}
