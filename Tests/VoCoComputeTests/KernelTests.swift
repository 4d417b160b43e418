import Foundation
import Testing
@testable import VoCoCompute

@Suite struct KernelTests {
    @Test func rmsNormAndLayerNormMatchTheirFormulas() {
        let width = 37, x = randomFloats(2 * width, seed: 5), w = randomFloats(width, seed: 6), b = randomFloats(width, seed: 7)
        var y = [Float](repeating: 0, count: x.count)
        Kernels.rmsNorm(x, rows: 2, width: width, weight: w, epsilon: 1e-5, into: &y)
        for r in 0..<2 {
            let row = x[(r * width)..<((r + 1) * width)].map(Double.init)
            let scale = 1 / (row.map { $0 * $0 }.reduce(0, +) / Double(width) + 1e-5).squareRoot()
            for i in 0..<width { #expect(abs(Double(y[r * width + i]) - Double(w[i]) * row[i] * scale) < 1e-5) }
        }
        Kernels.layerNorm(x, rows: 2, width: width, weight: w, bias: b, epsilon: 1e-5, into: &y)
        for r in 0..<2 {
            let row = x[(r * width)..<((r + 1) * width)].map(Double.init)
            let mean = row.reduce(0, +) / Double(width)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
            for i in 0..<width {
                let expected = (row[i] - mean) / (variance + 1e-5).squareRoot() * Double(w[i]) + Double(b[i])
                #expect(abs(Double(y[r * width + i]) - expected) < 1e-5)
            }
        }
    }

    @Test func softmaxMasksTheTail() {
        var x: [Float] = [1, 2, 3, 100]
        Kernels.softmax(&x, count: 3, total: 4)
        let e = [1.0, 2.0, 3.0].map { exp($0 - 3) }, s = e.reduce(0, +)
        for i in 0..<3 { #expect(abs(Double(x[i]) - e[i] / s) < 1e-6) }
        #expect(x[3] == 0)
    }

    @Test func activationsMatchTorchFormulas() {
        let x: [Float] = [-3, -1, -0.25, 0, 0.5, 2, 6]
        var g = x
        Kernels.gelu(&g, count: x.count)
        var q = x
        Kernels.quickGELU(&q, count: x.count)
        var s = x
        Kernels.swiGLU(gate: &s, up: [Float](repeating: 2, count: x.count), count: x.count)
        for (i, v) in x.map(Double.init).enumerated() {
            #expect(abs(Double(g[i]) - v * 0.5 * (1 + erf(v / 2.0.squareRoot()))) < 1e-6)
            #expect(abs(Double(q[i]) - v / (1 + exp(-1.702 * v))) < 1e-6)
            #expect(abs(Double(s[i]) - 2 * v / (1 + exp(-v))) < 1e-5)
        }
    }

    @Test func rotaryIsRotateHalfAtEachPosition() {
        let rope = RotaryEmbedding(headDim: 8, theta: 10000)
        for (f, expected) in zip(rope.inverseFrequencies, [1, 0.1, 0.01, 0.001] as [Float]) { #expect(abs(f - expected) <= expected * 1e-6) }
        var cos = [Float](repeating: 0, count: 3 * 4), sin = cos
        rope.fillTable(positions: 5, count: 3, cos: &cos, sin: &sin)
        let v = randomFloats(2 * 8, seed: 8)  // two heads
        for r in 0..<3 {
            var x = v
            cos.withUnsafeBufferPointer { c in sin.withUnsafeBufferPointer { s in
                rope.rotate(&x, heads: 2, cos: c.baseAddress! + r * 4, sin: s.baseAddress! + r * 4)
            } }
            for h in 0..<2 { for i in 0..<4 {
                let angle = Double(5 + r) * pow(10000, -Double(2 * i) / 8)
                let a = Double(v[h * 8 + i]), b = Double(v[h * 8 + i + 4])
                #expect(abs(Double(x[h * 8 + i]) - (a * Foundation.cos(angle) - b * Foundation.sin(angle))) < 1e-5)
                #expect(abs(Double(x[h * 8 + i + 4]) - (b * Foundation.cos(angle) + a * Foundation.sin(angle))) < 1e-5)
            } }
        }
    }

    @Test(arguments: [ComputeBackend.openBLAS] + KernelISA.allCases.map { .kernels($0) })
    func attentionMatchesNaiveGroupedCausalAttention(backend: ComputeBackend) throws {
        if case let .kernels(isa?) = backend, !isa.isSupported { try Test.cancel("skipped: this CPU cannot run \(isa) kernels") }
        let heads = 4, kvHeads = 2, d = 6, n = 5, past = 3, m = past + n
        let shape = AttentionShape(heads: heads, kvHeads: kvHeads, headDim: d)
        let q = randomFloats(n * heads * d, seed: 9), k = randomFloats(m * kvHeads * d, seed: 10), v = randomFloats(m * kvHeads * d, seed: 11)
        var out = [Float](repeating: 0, count: n * heads * d)
        let threads = ComputeThreads(count: 2)
        q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in out.withUnsafeMutableBufferPointer { op in
            let blocks = [AttentionBlock(queries: qp.baseAddress!, keys: kp.baseAddress!, values: vp.baseAddress!, output: op.baseAddress!,
                                         queryCount: n, keyCount: m, causalOffset: past)]
            blocks.withUnsafeBufferPointer {
                Attention.run($0, shape: shape, multiplier: backend.makeMultiplier(threads: threads), threads: threads, scratch: ScratchBuffer())
            }
        } } } }
        for i in 0..<n { for h in 0..<heads {
            let kv = h / (heads / kvHeads), visible = past + i + 1
            let scores = (0..<visible).map { j in
                (0..<d).reduce(0.0) { $0 + Double(q[(i * heads + h) * d + $1]) * Double(k[(j * kvHeads + kv) * d + $1]) } / Double(d).squareRoot()
            }
            let top = scores.max() ?? 0, e = scores.map { exp($0 - top) }, s = e.reduce(0, +)
            for t in 0..<d {
                let expected = (0..<visible).reduce(0.0) { $0 + e[$1] / s * Double(v[($1 * kvHeads + kv) * d + t]) }
                #expect(abs(Double(out[(i * heads + h) * d + t]) - expected) < 1e-5)
            }
        } }
    }
}
