import COpenBLAS
import Foundation
import SafeTensors
import Testing
import VoCoKernels

/// The linear kernel (GEMV up to 8 rows, packed GEMM above) against OpenBLAS on the same exact
/// F32 values, at every ISA level, over odd shapes and unaligned pointers.
@Suite struct LinearKernelTests {
    /// (rows, out, in): 1, 7, 33 and 4097 in every role (not all at once, to stay quick); 8 is
    /// the last GEMV row count, 9 the first GEMM one; 300 x 600 x 520 spans several packed blocks.
    static let shapes: [(m: Int, n: Int, k: Int)] = {
        var list: [(Int, Int, Int)] = []
        for m in [1, 7, 33] { for n in [1, 7, 33, 4097] { for k in [1, 7, 33, 4097] where n < 4097 || k < 4097 {
            list.append((m, n, k))
        } } }
        return list + [(4097, 7, 33), (4097, 33, 257), (8, 64, 256), (9, 64, 256), (300, 600, 520)]
    }()

    static let codes: [Int32] = [f32Code, f16Code, bf16Code]
    static let pool = vk_pool_create(2, -1)

    @Test(arguments: Levels.all, codes)
    func linearMatchesOpenBLAS(isa: Int32, code: Int32) throws {
        try Levels.requireSupported(isa)
        var checked = 0
        var weights: [Int: StoredWeight] = [:]  // by n * 10_000 + k: one weight for every row count
        for (m, n, k) in Self.shapes {
            let weight = weights[n * 10_000 + k] ?? StoredWeight(randomFloats(n * k, seed: UInt64(n * 31 + k)), code: code)
            weights[n * 10_000 + k] = weight
            let x = randomFloats(m * k, seed: UInt64(m * 7 + k))
            let bias = randomFloats(n, seed: 5)
            let expected = referenceProduct(x, m: m, weight.floats, n: n, k: k)
            let magnitude = referenceProduct(x.map(abs), m: m, weight.floats.map(abs), n: n, k: k)
            // Unaligned: x, y and the weight one element past aligned addresses.
            var xs = [Float](repeating: 0, count: m * k + 1)
            xs.replaceSubrange(1..., with: x)
            var ys = [Float](repeating: .nan, count: m * n + 1)  // NaN already there must not leak in
            xs.withUnsafeBufferPointer { xp in ys.withUnsafeMutableBufferPointer { yp in weight.withUnalignedStorage { w in
                vk_linear(Self.pool, isa, xp.baseAddress! + 1, m, k, w, code, n, k, k, nil, yp.baseAddress! + 1, n, 0)
            } } }
            let check = agrees(Array(ys[1...]), expected, magnitude: magnitude)
            #expect(check.ok, "\(Levels.name(isa)) type \(code) m \(m) n \(n) k \(k): \(check.worst)")

            // accumulate and bias: y += x wᵀ + bias
            ys.withUnsafeMutableBufferPointer { yp in xs.withUnsafeBufferPointer { xp in bias.withUnsafeBufferPointer { bp in
                weight.withUnalignedStorage { w in
                    vk_linear(Self.pool, isa, xp.baseAddress! + 1, m, k, w, code, n, k, k, bp.baseAddress, yp.baseAddress! + 1, n, 1)
                }
            } } }
            var doubled = expected, bound = magnitude
            for i in 0..<(m * n) {
                doubled[i] = 2 * expected[i] + bias[i % n]
                bound[i] = 2 * magnitude[i] + abs(bias[i % n])
            }
            let accumulated = agrees(Array(ys[1...]), doubled, magnitude: bound)
            #expect(accumulated.ok, "accumulate \(Levels.name(isa)) type \(code) m \(m) n \(n) k \(k): \(accumulated.worst)")
            checked += 1
        }
        #expect(checked == Self.shapes.count)
    }

    /// A of 1,100 rows x 4,097 (18 MB, over the 16 MiB packed once for every task) is packed in
    /// row chunks; its rows are 5 floats apart beyond k, and the last chunk (140 rows) is not a
    /// whole number of the 240-row blocks.
    @Test(arguments: Levels.all)
    func largeActivationsPackedInRowChunks(isa: Int32) throws {
        try Levels.requireSupported(isa)
        let (m, n, k, lda) = (1100, 40, 4097, 4102)
        let weight = StoredWeight(randomFloats(n * k, seed: 41), code: f16Code)
        let x = (0..<m).flatMap { randomFloats(k, seed: UInt64(43 + $0)) }  // more values than the noise table has
        var strided = [Float](repeating: .nan, count: m * lda)  // the gaps are NaN: never read
        for i in 0..<m { strided.replaceSubrange(i * lda..<(i * lda + k), with: x[(i * k)..<((i + 1) * k)]) }
        var y = [Float](repeating: .nan, count: m * n)
        weight.withUnalignedStorage { w in vk_linear(Self.pool, isa, strided, m, lda, w, f16Code, n, k, k, nil, &y, n, 0) }
        let check = agrees(y, referenceProduct(x, m: m, weight.floats, n: n, k: k),
                           magnitude: referenceProduct(x.map(abs), m: m, weight.floats.map(abs), n: n, k: k))
        #expect(check.ok, "\(Levels.name(isa)): \(check.worst)")
    }

    /// The AVX-512 level with each GEMM tile (its own 12 x 32, and the AVX2 level's 6 x 16 that
    /// it uses where the CPU splits 512-bit FMAs), each forced for its calls by a flag in `isa`, against
    /// OpenBLAS over the GEMM shapes (more than 8 rows), every weight type.
    @Test(arguments: [VK_TILE_WIDE, VK_TILE_NARROW] as [Int32])
    func avx512EitherTileMatchesOpenBLAS(tile: Int32) throws {
        try Levels.requireSupported(Int32(VK_ISA_AVX512.rawValue))
        let isa = Int32(VK_ISA_AVX512.rawValue) | tile
        for (m, n, k) in Self.shapes where m > 8 {
            for code in Self.codes {
                let weight = StoredWeight(randomFloats(n * k, seed: UInt64(n + k)), code: code)
                let x = randomFloats(m * k, seed: UInt64(m + k))
                var y = [Float](repeating: .nan, count: m * n)
                weight.withUnalignedStorage { w in vk_linear(Self.pool, isa, x, m, k, w, code, n, k, k, nil, &y, n, 0) }
                let check = agrees(y, referenceProduct(x, m: m, weight.floats, n: n, k: k),
                                   magnitude: referenceProduct(x.map(abs), m: m, weight.floats.map(abs), n: n, k: k))
                #expect(check.ok, "tile \(tile) type \(code) m \(m) n \(n) k \(k): \(check.worst)")
            }
        }
    }

    /// `vk_linear_group`: outputs of 1, 7, 256 and 4097 rows (and one of none) in F32, F16 and
    /// BF16 from one input, each as its own `linear` would give it, overwritten or added to, at
    /// 1, 3 and 8 rows (one region of GEMV tasks over every output) and 9 (a GEMM each).
    @Test(arguments: Levels.all)
    func groupedOutputsMatchOpenBLAS(isa: Int32) throws {
        try Levels.requireSupported(isa)
        let k = 67
        let sizes = [7, 0, 4097, 1, 256]
        let weights = sizes.enumerated().map { i, n in
            StoredWeight(randomFloats(n * k, seed: UInt64(100 + i)), code: Self.codes[i % Self.codes.count])
        }
        for m in [1, 3, 8, 9] {
            let x = randomFloats(m * k, seed: UInt64(m))
            for accumulate in [false, true] {
                let start = sizes.enumerated().map { i, n in randomFloats(m * n, seed: UInt64(200 + i)) }
                var ys = start.map { accumulate ? $0 : [Float](repeating: .nan, count: $0.count) }
                // Storage that stays put while the group runs: the weights unaligned, outputs as given.
                let storage = weights.map { w -> UnsafeMutableRawPointer in
                    let size = w.code == f32Code ? 4 : 2
                    let raw = UnsafeMutableRawPointer.allocate(byteCount: w.floats.count * size + size, alignment: 64)
                    w.withUnalignedStorage { raw.advanced(by: size).copyMemory(from: $0, byteCount: w.floats.count * size) }
                    return raw
                }
                defer { storage.forEach { $0.deallocate() } }
                let outputs = ys.indices.map { i in UnsafeMutablePointer<Float>.allocate(capacity: max(1, ys[i].count)) }
                defer { outputs.forEach { $0.deallocate() } }
                for i in ys.indices { outputs[i].update(from: ys[i], count: ys[i].count) }
                let group = sizes.indices.map { i in
                    vk_linear_output(w: UnsafeRawPointer(storage[i].advanced(by: weights[i].code == f32Code ? 4 : 2)),
                                     w_type: weights[i].code, n: sizes[i], ldw: k, y: outputs[i], ldy: sizes[i],
                                     beta: accumulate ? 1 : 0)
                }
                vk_linear_group(Self.pool, isa, x, m, k, k, group, group.count)
                for i in ys.indices { ys[i] = Array(UnsafeBufferPointer(start: outputs[i], count: ys[i].count)) }
                for (i, n) in sizes.enumerated() {
                    var expected = referenceProduct(x, m: m, weights[i].floats, n: n, k: k)
                    var magnitude = referenceProduct(x.map(abs), m: m, weights[i].floats.map(abs), n: n, k: k)
                    if accumulate {
                        for j in expected.indices {
                            expected[j] += start[i][j]
                            magnitude[j] += abs(start[i][j])
                        }
                    }
                    let check = agrees(ys[i], expected, magnitude: magnitude)
                    #expect(check.ok, "\(Levels.name(isa)) m \(m) output \(i) (n \(n)) accumulate \(accumulate): \(check.worst)")
                }
            }
        }
    }

    @Test(arguments: Levels.all)
    func generalGemmTransposesAndScales(isa: Int32) throws {
        try Levels.requireSupported(isa)
        for (m, n, k) in [(1, 5, 3), (7, 33, 9), (33, 7, 65), (40, 70, 300)] {
            let a = randomFloats(m * k, seed: 1), b = randomFloats(k * n, seed: 2), c0 = randomFloats(m * n, seed: 3)
            for transposed in [false, true] {
                // b as [k][n], or its transpose [n][k]
                let bt = transposed ? (0..<(n * k)).map { b[($0 % k) * n + $0 / k] } : b
                var expected = c0, actual = c0
                cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
                            0.5, a, Int32(k), bt, Int32(transposed ? k : n), 0.25, &expected, Int32(n))
                vk_gemm(Self.pool, isa, m, n, k, 0.5, a, k, bt, f32Code, transposed ? k : n, transposed ? 1 : 0, 0.25, &actual, n)
                let magnitude = [Float](repeating: Float(k), count: m * n)
                let check = agrees(actual, expected, magnitude: magnitude, relative: 1e-6)
                #expect(check.ok, "\(Levels.name(isa)) m \(m) n \(n) k \(k) transposed \(transposed): \(check.worst)")
            }
        }
    }
}
