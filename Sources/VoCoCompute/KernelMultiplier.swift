import Foundation
import SafeTensors
import VoCoKernels

// MARK: - VoCoKernels behind the GEMM seam

/// Products through VoCoKernels: F16/BF16 weights are read where they lie (the memory map) and
/// widened inside the kernels, so a mapped half-precision model needs no F32 copy and decoding
/// reads every weight byte once per token. Up to 8 rows stream each weight row once (GEMV);
/// more rows go through a packed GEMM whose packing widens the weight. Attention is flash-style
/// (one tile of scores per worker). Threads: the pool of `threads`.
public final class KernelMultiplier: MatrixMultiplier, @unchecked Sendable {
    public let threads: ComputeThreads
    /// The level that runs (the requested one, or the best below it this CPU has).
    public let isa: KernelISA

    public init(threads: ComputeThreads = ComputeThreads(), isa: KernelISA? = nil) {
        self.threads = threads
        let requested = isa ?? .best
        self.isa = KernelISA(rawValue: vk_isa_effective(requested.rawValue)) ?? .scalar
    }

    public var summary: String {
        let tile = isa == .avx512 && vk_avx512_gemm_narrow() != 0 ? ", GEMM through the 6x16 tile" : ""
        return "VoCoKernels \(isa) (F16/BF16 weights read in place\(tile)), \(threads.count) thread(s)"
    }

    private var pool: OpaquePointer? { threads.pool?.pointer }

    public func linear(_ x: UnsafePointer<Float>, rows m: Int, weight: WeightMatrix, bias: UnsafePointer<Float>?,
                       into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let n = weight.rows, k = weight.columns
        guard m > 0, n > 0 else { return }
        vk_linear(pool, isa.rawValue, x, m, k, weight.base, Self.code(weight.dtype), n, k, k, bias, y, n, accumulate ? 1 : 0)
    }

    public func linear(_ x: UnsafePointer<Float>, rows m: Int, weights: UnsafeBufferPointer<WeightMatrix>,
                       into outputs: UnsafeBufferPointer<UnsafeMutablePointer<Float>>) {
        precondition(weights.count == outputs.count, "one output per weight")
        guard m > 0, let k = weights.first?.columns else { return }
        withUnsafeTemporaryAllocation(of: vk_linear_output.self, capacity: weights.count) { group in
            for (i, weight) in weights.enumerated() {
                precondition(weight.columns == k, "weights of one input have one width")
                group[i] = vk_linear_output(w: weight.base, w_type: Self.code(weight.dtype), n: weight.rows, ldw: k,
                                            y: outputs[i], ldy: weight.rows, beta: 0)
            }
            vk_linear_group(pool, isa.rawValue, x, m, k, k, group.baseAddress, weights.count)
        }
    }

    public func gemm(m: Int, n: Int, k: Int, alpha: Float,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        vk_gemm(pool, isa.rawValue, m, n, k, alpha, a, lda, b, Int32(VK_F32.rawValue), ldb, bTransposed ? 1 : 0, beta, c, ldc)
    }

    public func attention(_ blocks: UnsafeBufferPointer<AttentionBlock>, shape: AttentionShape,
                          threads: ComputeThreads, scratch: ScratchBuffer) {
        withUnsafeTemporaryAllocation(of: vk_attention_block.self, capacity: max(1, blocks.count)) { converted in
            for (i, b) in blocks.enumerated() {
                converted[i] = vk_attention_block(queries: b.queries, keys: b.keys, values: b.values, output: b.output,
                                                  query_count: b.queryCount, key_count: b.keyCount,
                                                  causal_offset: b.causalOffset ?? -1)
            }
            vk_attention(threads.pool?.pointer, isa.rawValue, converted.baseAddress, blocks.count,
                         shape.heads, shape.kvHeads, shape.headDim, shape.scale)
        }
    }

    /// The kernels' code for a weight's storage type.
    static func code(_ dtype: DType) -> Int32 {
        switch dtype {
        case .f16: return Int32(VK_F16.rawValue)
        case .bf16: return Int32(VK_BF16.rawValue)
        default: return Int32(VK_F32.rawValue)
        }
    }
}
