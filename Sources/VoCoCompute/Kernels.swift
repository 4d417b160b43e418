import Foundation
import VoCoKernels

// MARK: - Small kernels (everything that is not a GEMM)

/// Row-wise and element-wise kernels, written to match PyTorch's F32 results: statistics are
/// accumulated in eight SIMD lanes (close to ATen's vectorised reductions), activations use the
/// exact formulas of `torch.nn.functional` (SiLU and quick_gelu vectorised in VoCoKernels, whose
/// exp is within about 1 ulp of `expf`).
public enum Kernels {
    // MARK: Reductions

    @inline(__always)
    static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= n {
            acc += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var s = acc.sum()
        while i < n { s += x[i]; i += 1 }
        return s
    }

    @inline(__always)
    static func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int, minus mean: Float = 0) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        let m = SIMD8<Float>(repeating: mean)
        var i = 0
        while i + 8 <= n {
            let d = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - m
            acc += d * d
            i += 8
        }
        var s = acc.sum()
        while i < n { let d = x[i] - mean; s += d * d; i += 1 }
        return s
    }

    // MARK: Normalisation

    /// LLaMA RMSNorm: `weight * x / sqrt(mean(x²) + eps)`, row by row. `x` and `y` may alias.
    public static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, width: Int, weight: UnsafePointer<Float>,
                               epsilon: Float, into y: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let xr = x + r * width, yr = y + r * width
            let scale = 1 / (sumOfSquares(xr, width) / Float(width) + epsilon).squareRoot()
            for i in 0..<width { yr[i] = weight[i] * (xr[i] * scale) }
        }
    }

    /// LayerNorm with biased variance: `(x - mean) / sqrt(var + eps) * weight + bias`. May alias.
    public static func layerNorm(_ x: UnsafePointer<Float>, rows: Int, width: Int, weight: UnsafePointer<Float>,
                                 bias: UnsafePointer<Float>, epsilon: Float, into y: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let xr = x + r * width, yr = y + r * width
            let mean = sum(xr, width) / Float(width)
            let variance = sumOfSquares(xr, width, minus: mean) / Float(width)
            let scale = 1 / (variance + epsilon).squareRoot()
            for i in 0..<width { yr[i] = (xr[i] - mean) * scale * weight[i] + bias[i] }
        }
    }

    // MARK: Softmax

    /// In-place softmax of `count` values; `x[count ..< total]` (masked keys) are set to 0.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int, total: Int) {
        if count > 0 {
            var maximum = -Float.infinity
            for i in 0..<count { maximum = max(maximum, x[i]) }
            var s: Float = 0
            for i in 0..<count {
                let e = expf(x[i] - maximum)
                x[i] = e
                s += e
            }
            let inverse = 1 / s
            for i in 0..<count { x[i] *= inverse }
        }
        if total > count { (x + count).update(repeating: 0, count: total - count) }
    }

    // MARK: Activations

    /// `gate = silu(gate) * up` (LLaMA's SwiGLU), `silu(x) = x * sigmoid(x)`.
    public static func swiGLU(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        vk_silu_mul(vk_isa_default(), gate, up, count)
    }

    /// Exact GELU: `x/2 * (1 + erf(x/√2))` in place.
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let invSqrt2: Float = 0.70710678118654752440
        for i in 0..<count { x[i] = x[i] * 0.5 * (1 + erff(x[i] * invSqrt2)) }
    }

    /// CLIP's quick_gelu: `x * sigmoid(1.702 x)` in place.
    public static func quickGELU(_ x: UnsafeMutablePointer<Float>, count: Int) {
        vk_quick_gelu(vk_isa_default(), x, count)
    }

    // MARK: Element-wise

    /// `y += x`.
    public static func add(_ x: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }

    /// `y[r][i] += bias[i]` for every row.
    public static func addBias(_ bias: UnsafePointer<Float>, rows: Int, width: Int, to y: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { add(bias, to: y + r * width, count: width) }
    }
}
