import VoCoCompute

// MARK: - What every forward pass computes with

/// The GEMM seam and the threads, shared by every part of one engine.
public struct ComputeContext: Sendable {
    public let multiplier: MatrixMultiplier
    public let threads: ComputeThreads

    public init(multiplier: MatrixMultiplier, threads: ComputeThreads) {
        self.multiplier = multiplier
        self.threads = threads
    }

    /// `backend` (default: VoCoKernels at the CPU's best level, or `$VOCO_BACKEND`) with
    /// `threads` workers (default: `$VOCO_THREADS`, else every core).
    public init(backend: ComputeBackend = .default, threads: Int? = nil) {
        let t = threads.map { ComputeThreads(count: $0) } ?? ComputeThreads()
        self.init(multiplier: backend.makeMultiplier(threads: t), threads: t)
    }

    /// What runs the products: backend, ISA level and threads (for `--verbose` and benchmarks).
    public var summary: String { multiplier.summary }

    @inline(__always)
    func linear(_ x: UnsafePointer<Float>, rows: Int, _ weight: WeightMatrix, bias: [Float]? = nil,
                into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        if let bias {
            bias.withUnsafeBufferPointer {
                multiplier.linear(x, rows: rows, weight: weight, bias: $0.baseAddress, into: y, accumulate: accumulate)
            }
        } else {
            multiplier.linear(x, rows: rows, weight: weight, bias: nil, into: y, accumulate: accumulate)
        }
    }

    /// `outputs[i] = x · weights[i]ᵀ` for every i, as one region where the backend can (see
    /// `MatrixMultiplier.linear(_:rows:weights:into:)`).
    @inline(__always)
    func linear(_ x: UnsafePointer<Float>, rows: Int, _ weights: UnsafeBufferPointer<WeightMatrix>,
                into outputs: UnsafeBufferPointer<UnsafeMutablePointer<Float>>) {
        multiplier.linear(x, rows: rows, weights: weights, into: outputs)
    }
}
