import Foundation
import Testing
@testable import VoCoCompute

/// VoCoKernels' flash attention (one tile of scores at a time, online softmax) against the
/// reference formulation through OpenBLAS, over prompts longer than a tile, grouped heads,
/// several sequences of different lengths, causal and not.
@Suite struct FlashAttentionTests {
    struct Case: Sendable, CustomStringConvertible {
        let queries: [Int]  // per block
        let past: Int
        let heads, kvHeads, headDim: Int
        let causal: Bool
        var description: String { "q \(queries) past \(past) heads \(heads)/\(kvHeads) d \(headDim) causal \(causal)" }
    }

    static let cases: [Case] = [
        Case(queries: [1], past: 600, heads: 32, kvHeads: 4, headDim: 64, causal: true),  // a decode step
        Case(queries: [7], past: 0, heads: 4, kvHeads: 2, headDim: 8, causal: true),
        Case(queries: [33], past: 5, heads: 4, kvHeads: 4, headDim: 16, causal: true),
        Case(queries: [300], past: 2, heads: 8, kvHeads: 2, headDim: 64, causal: true),  // > 2 tiles of keys and queries
        Case(queries: [130, 17], past: 0, heads: 3, kvHeads: 3, headDim: 24, causal: false),  // CLIP-like, two images
        Case(queries: [40, 40, 40], past: 0, heads: 6, kvHeads: 3, headDim: 33, causal: true),
    ]

    @Test(arguments: KernelISA.allCases, cases)
    func flashAttentionMatchesTheReference(isa: KernelISA, c: Case) throws {
        if !isa.isSupported { try Test.cancel("skipped: this CPU cannot run \(isa) kernels") }
        let threads = ComputeThreads(count: 2)
        let shape = AttentionShape(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim)
        let qw = c.heads * c.headDim, kw = c.kvHeads * c.headDim
        let data = c.queries.enumerated().map { i, n in
            (q: randomFloats(n * qw, seed: UInt64(10 + i)).map { $0 * 3 },  // scores of a few units: a peaked softmax
             k: randomFloats((c.past + n) * kw, seed: UInt64(20 + i)), v: randomFloats((c.past + n) * kw, seed: UInt64(30 + i)))
        }
        func attend(_ multiplier: MatrixMultiplier) -> [[Float]] {
            var outputs = c.queries.map { [Float](repeating: .nan, count: $0 * qw) }
            let pointers = data.indices.map { i in
                (q: FloatStorage(data[i].q), k: FloatStorage(data[i].k), v: FloatStorage(data[i].v), o: FloatStorage(count: outputs[i].count))
            }
            let blocks = pointers.enumerated().map { i, p in
                AttentionBlock(queries: p.q.pointer, keys: p.k.pointer, values: p.v.pointer, output: p.o.pointer,
                               queryCount: c.queries[i], keyCount: c.past + c.queries[i], causalOffset: c.causal ? c.past : nil)
            }
            blocks.withUnsafeBufferPointer {
                Attention.run($0, shape: shape, multiplier: multiplier, threads: threads, scratch: ScratchBuffer())
            }
            for i in outputs.indices { outputs[i] = Array(UnsafeBufferPointer(start: pointers[i].o.pointer, count: outputs[i].count)) }
            return outputs
        }
        let expected = attend(BLASMultiplier(threads: threads)), actual = attend(KernelMultiplier(threads: threads, isa: isa))
        for (e, a) in zip(expected, actual) { #expect(maxError(a, e) < 2e-6, "\(isa) \(c)") }
    }
}
