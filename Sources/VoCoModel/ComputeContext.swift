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

    /// OpenBLAS with `threads` workers (default: every core).
    public init(threads: Int? = nil) {
        let t = threads.map { ComputeThreads(count: $0) } ?? ComputeThreads()
        self.init(multiplier: BLASMultiplier(threads: t), threads: t)
    }

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
}
