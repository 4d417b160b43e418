import Foundation

// MARK: - Rotary position embedding (Hugging Face rotate-half convention)

/// RoPE as `transformers`' LLaMA applies it: the angle of pair `i` at position `p` is
/// `p * theta^(-2i/headDim)` (F32, as `LlamaRotaryEmbedding`), and a head vector `x` becomes
/// `x * cos + rotate_half(x) * sin` with `rotate_half(x) = [-x[half...], x[..<half]]`.
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    /// `[headDim/2]` inverse frequencies.
    public let inverseFrequencies: [Float]

    public init(headDim: Int, theta: Double) {
        precondition(headDim % 2 == 0, "RoPE needs an even head dimension, got \(headDim)")
        self.headDim = headDim
        inverseFrequencies = (0..<(headDim / 2)).map { i in
            let exponent = Float(2 * i) / Float(headDim)
            return 1 / Float(pow(theta, Double(exponent)))
        }
    }

    /// Fills `cos` and `sin` (`[count][headDim/2]` each) for positions `start ..< start + count`.
    public func fillTable(positions start: Int, count: Int,
                          cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        let half = headDim / 2
        for r in 0..<count {
            let p = Float(start + r)
            for i in 0..<half {
                let angle = p * inverseFrequencies[i]
                cos[r * half + i] = Foundation.cos(angle)
                sin[r * half + i] = Foundation.sin(angle)
            }
        }
    }

    /// Rotates, in place, `heads` head vectors of one row (`[heads][headDim]`) with one table row.
    @inline(__always)
    public func rotate(_ x: UnsafeMutablePointer<Float>, heads: Int,
                       cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = headDim / 2
        for h in 0..<heads {
            let v = x + h * headDim
            for i in 0..<half {
                let a = v[i], b = v[i + half]
                v[i] = a * cos[i] - b * sin[i]
                v[i + half] = b * cos[i] + a * sin[i]
            }
        }
    }

    /// Rotates `rows` rows (`[rows][rowStride]`, the first `heads * headDim` of each) where row
    /// `r` takes table row `r % tableRows`: a batch of sequences that share positions.
    public func rotate(_ x: UnsafeMutablePointer<Float>, rows: Int, rowStride: Int, heads: Int,
                       cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, tableRows: Int) {
        let half = headDim / 2
        for r in 0..<rows {
            let t = (r % tableRows) * half
            rotate(x + r * rowStride, heads: heads, cos: cos + t, sin: sin + t)
        }
    }
}
