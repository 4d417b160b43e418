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
    /// Query rows per chunk of the reference: its scores are `[chunk][keys]` per worker.
    static let referenceChunk = 64

    /// Scratch floats `reference` needs for these blocks (reserve it once, outside hot loops).
    public static func scratchCount(maxQueries: Int, maxKeys: Int, threads: ComputeThreads) -> Int {
        threads.count * min(maxQueries, referenceChunk) * maxKeys
    }

    /// Softmax(Q Kᵀ · scale + mask) V for every block and query head; query head `h` reads KV
    /// head `h / (heads / kvHeads)`. Runs the multiplier's attention (VoCoKernels: flash-style).
    public static func run(_ blocks: UnsafeBufferPointer<AttentionBlock>, shape: AttentionShape,
                           multiplier: MatrixMultiplier, threads: ComputeThreads, scratch: ScratchBuffer) {
        multiplier.attention(blocks, shape: shape, threads: threads, scratch: scratch)
    }

    /// The reference formulation through `multiplier.gemm`: per block, head and chunk of up to
    /// 64 query rows, the scores of every key the chunk sees, a softmax per row, then P V.
    /// Blocks x heads are spread over the workers.
    public static func reference(_ blocks: UnsafeBufferPointer<AttentionBlock>, shape: AttentionShape,
                                 multiplier: MatrixMultiplier, threads: ComputeThreads, scratch: ScratchBuffer) {
        var maxQueries = 0, maxKeys = 0
        for b in blocks { maxQueries = max(maxQueries, b.queryCount); maxKeys = max(maxKeys, b.keyCount) }
        let chunk = min(maxQueries, referenceChunk), perWorker = chunk * maxKeys
        let scores = scratch.reserve(max(1, threads.count * perWorker))  // [workers][chunk][maxKeys]
        let d = shape.headDim
        let qStride = shape.heads * d, kvStride = shape.kvHeads * d
        let group = shape.heads / shape.kvHeads
        threads.forEach(blocks.count * shape.heads, cost: 2 * blocks.count * shape.heads * maxQueries * maxKeys * d) { item, worker in
            let block = blocks[item / shape.heads]
            let h = item % shape.heads, kvh = h / group
            let s = scores + worker * perWorker  // [rows][m]
            var first = 0
            while first < block.queryCount {
                let rows = min(chunk, block.queryCount - first)
                // Keys the chunk's last row sees; the rest would be masked to zero.
                let m = block.causalOffset.map { min(block.keyCount, $0 + first + rows) } ?? block.keyCount
                let q = block.queries + first * qStride + h * d, out = block.output + first * qStride + h * d
                if m == 0 {
                    for i in 0..<rows { (out + i * qStride).update(repeating: 0, count: d) }
                    first += rows
                    continue
                }
                multiplier.gemm(m: rows, n: m, k: d, alpha: shape.scale, a: q, lda: qStride,
                                b: block.keys + kvh * d, ldb: kvStride, bTransposed: true, beta: 0, c: s, ldc: m)
                for i in 0..<rows {
                    let visible = block.causalOffset.map { min(m, $0 + first + i + 1) } ?? m
                    Kernels.softmax(s + i * m, count: visible, total: m)
                }
                multiplier.gemm(m: rows, n: d, k: m, alpha: 1, a: s, lda: m, b: block.values + kvh * d, ldb: kvStride,
                                bTransposed: false, beta: 0, c: out, ldc: qStride)
                first += rows
            }
        }
    }
}
