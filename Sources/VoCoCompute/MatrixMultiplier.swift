import COpenBLAS
import Foundation

// MARK: - The GEMM seam

/// Every matrix product of the engine goes through this protocol: linear layers (activations
/// times a stored weight), attention, and general F32 products. Two backends (`ComputeBackend`):
/// `KernelMultiplier` (VoCoKernels: F16/BF16 weights read in place, the default) and
/// `BLASMultiplier` (OpenBLAS F32, the reference the tests compare against).
public protocol MatrixMultiplier: AnyObject, Sendable {
    /// What runs the products, for `--verbose` and benchmarks (backend, ISA level, threads).
    var summary: String { get }

    /// The one-time preparation of a weight at load (a backend may repack it); the weight
    /// `linear` is then given. Default: the weight as it is (both backends read the checkpoint's
    /// `[out][in]` layout where it lies, so a mapped model stays mapped).
    func prepare(_ weight: WeightMatrix) -> WeightMatrix


    /// `y[m][weight.rows] = x[m][weight.columns] · weightᵀ + bias (+ y when accumulate)`.
    /// Called from one thread at a time; may use all cores and its own scratch.
    func linear(_ x: UnsafePointer<Float>, rows m: Int, weight: WeightMatrix, bias: UnsafePointer<Float>?,
                into y: UnsafeMutablePointer<Float>, accumulate: Bool)

    /// `outputs[i]` (`[m][weights[i].rows]`) `= x · weights[i]ᵀ` for every i: linear layers of
    /// the same input `x` (`[m][columns]`, the weights' common width), such as a layer's K, V
    /// and Q or an MLP's gate and up. A backend may run them as one parallel region (decoding:
    /// small K and V matrices then pay for no region of their own). Default: one `linear` each.
    func linear(_ x: UnsafePointer<Float>, rows m: Int, weights: UnsafeBufferPointer<WeightMatrix>,
                into outputs: UnsafeBufferPointer<UnsafeMutablePointer<Float>>)

    /// `c[m][n] = alpha · a[m][k] · op(b) + beta · c`, row-major with leading dimensions in
    /// elements; `op(b)` is `bᵀ` of a `[n][k]` matrix when `bTransposed`, else `b` `[k][n]`.
    /// Safe to call concurrently from inside `ComputeThreads.forEach` (no shared scratch).
    func gemm(m: Int, n: Int, k: Int, alpha: Float,
              a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
              beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int)

    /// Softmax(Q Kᵀ · scale + mask) V for every block and query head (see `Attention.run`).
    /// Default: `Attention.reference`, which goes through `gemm`.
    func attention(_ blocks: UnsafeBufferPointer<AttentionBlock>, shape: AttentionShape,
                   threads: ComputeThreads, scratch: ScratchBuffer)
}

extension MatrixMultiplier {
    public func prepare(_ weight: WeightMatrix) -> WeightMatrix { weight }

    public func linear(_ x: UnsafePointer<Float>, rows m: Int, weights: UnsafeBufferPointer<WeightMatrix>,
                       into outputs: UnsafeBufferPointer<UnsafeMutablePointer<Float>>) {
        precondition(weights.count == outputs.count, "one output per weight")
        for (weight, y) in zip(weights, outputs) {
            precondition(weight.columns == weights[0].columns, "weights of one input have one width")
            linear(x, rows: m, weight: weight, bias: nil, into: y, accumulate: false)
        }
    }

    public func attention(_ blocks: UnsafeBufferPointer<AttentionBlock>, shape: AttentionShape,
                          threads: ComputeThreads, scratch: ScratchBuffer) {
        Attention.reference(blocks, shape: shape, multiplier: self, threads: threads, scratch: scratch)
    }
}

// MARK: - OpenBLAS

/// F32 GEMMs through OpenBLAS. F32 weights are read in place with OpenBLAS's own threads;
/// F16/BF16 weights are cut into tiles of rows, and each worker widens its tile into a reused
/// scratch buffer and multiplies it single-threaded, so widening and multiplying both use
/// every core.
public final class BLASMultiplier: MatrixMultiplier, @unchecked Sendable {
    public let threads: ComputeThreads
    /// Target size of one widened tile when few rows are multiplied (decode: stays in L2).
    public var smallTileBytes = 256 * 1024
    /// Target size of one widened tile for many rows (the GEMM amortises packing).
    public var largeTileBytes = 2 * 1024 * 1024
    private var tiles: [ScratchBuffer]  // per worker: [tileRows][columns]
    private let lock = NSLock()

    public init(threads: ComputeThreads = ComputeThreads()) {
        self.threads = threads
        tiles = (0..<threads.count).map { _ in ScratchBuffer() }
    }

    public var summary: String { "OpenBLAS F32 (half weights widened per tile unless widened at load), \(threads.count) thread(s)" }

    public func linear(_ x: UnsafePointer<Float>, rows m: Int, weight: WeightMatrix, bias: UnsafePointer<Float>?,
                       into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let n = weight.rows, k = weight.columns
        guard m > 0, n > 0 else { return }
        if let w = weight.float32 {
            gemm(m: m, n: n, k: k, alpha: 1, a: x, lda: k, b: w, ldb: k, bTransposed: true,
                 beta: accumulate ? 1 : 0, c: y, ldc: n)
        } else {
            lock.lock()
            defer { lock.unlock() }
            let target = m <= 16 ? smallTileBytes : largeTileBytes
            var tileRows = max(8, target / max(1, k * 4))
            tileRows = min(tileRows, (n + threads.count - 1) / threads.count)  // every worker gets a tile
            tileRows = max(1, min(n, (tileRows + 7) / 8 * 8))
            let tileCount = (n + tileRows - 1) / tileRows
            for tile in tiles { tile.reserve(tileRows * k) }
            threads.forEach(tileCount, cost: (m + 1) * n * k) { t, worker in
                let first = t * tileRows
                let count = min(tileRows, n - first)
                let w = tiles[worker].pointer  // [count][k]
                weight.widenRows(first..<(first + count), into: w)
                gemm(m: m, n: count, k: k, alpha: 1, a: x, lda: k, b: w, ldb: k, bTransposed: true,
                     beta: accumulate ? 1 : 0, c: y + first, ldc: n)
            }
        }
        if let bias { Kernels.addBias(bias, rows: m, width: n, to: y) }
    }

    public func gemm(m: Int, n: Int, k: Int, alpha: Float,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        if m == 1 {
            // One row (a decode step): GEMV, which skips GEMM's packing of both operands. Zeroed
            // first for beta 0, as OpenBLAS's scaling by 0 keeps a NaN already in scratch memory.
            if beta == 0 { c.update(repeating: 0, count: n) }
            if bTransposed {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb), a, 1, beta, c, 1)
            } else {
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, b, Int32(ldb), a, 1, beta, c, 1)
            }
            return
        }
        // A small GEMM runs on one thread: handing it to OpenBLAS's threads costs more than it
        // saves, and on a busy machine every hand-off waits for a time slice (OpenBLAS's threads
        // yield while they wait), which made a small model's evaluation 30x slower under load.
        let small = m * n * k < ComputeThreads.minimumParallelCost && openblas_get_num_threads() > 1
        if small { openblas_set_num_threads(1) }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, bTransposed ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        if small { openblas_set_num_threads(Int32(threads.count)) }
    }
}
