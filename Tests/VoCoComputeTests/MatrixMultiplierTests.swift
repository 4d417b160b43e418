import Foundation
import SafeTensors
import Testing
@testable import VoCoCompute

/// Deterministic pseudo-random values in [-1, 1).
func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
    var x = seed &* 0x9e37_79b9_7f4a_7c15 | 1
    return (0..<count).map { _ in
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        return Float(x >> 40) * 0x1p-23 - 1
    }
}

/// `y = x · wᵀ + bias` in Double.
func naiveLinear(_ x: [Float], rows m: Int, _ w: [Float], out n: Int, in k: Int, bias: [Float]?) -> [Float] {
    (0..<(m * n)).map { index in
        let i = index / n, j = index % n
        var s = Double(bias?[j] ?? 0)
        for t in 0..<k { s += Double(x[i * k + t]) * Double(w[j * k + t]) }
        return Float(s)
    }
}

/// A weight stored in `dtype` inside a real safetensors file (so the mapped path is exercised).
func mappedWeight(_ values: [Float], rows: Int, columns: Int, dtype: DType) throws -> (WeightMatrix, [Float]) {
    var writer = SafeTensorsWriter()
    try writer.add("w", shape: [rows, columns], floats: values, as: dtype)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("w-\(UUID().uuidString).safetensors").path
    try writer.write(to: path)
    let view = try SafeTensorsFile(path: path).tensor("w")
    return (try WeightMatrix(view, rows: rows, columns: columns), view.floats())
}

@Suite struct MatrixMultiplierTests {
    let multiplier = BLASMultiplier(threads: ComputeThreads(count: 2))

    @Test(arguments: [DType.f32, .f16, .bf16], [1, 3, 40])
    func linearMatchesNaiveProduct(dtype: DType, rows: Int) throws {
        let n = 150, k = 70  // n not a multiple of the tile height
        let (weight, exact) = try mappedWeight(randomFloats(n * k, seed: 1), rows: n, columns: k, dtype: dtype)
        multiplier.smallTileBytes = 16 * k * 4  // several tiles per worker
        multiplier.largeTileBytes = 24 * k * 4
        let x = randomFloats(rows * k, seed: 2), bias = randomFloats(n, seed: 3)
        var y = [Float](repeating: 0, count: rows * n)
        multiplier.linear(x, rows: rows, weight: weight, bias: bias, into: &y, accumulate: false)
        #expect(maxError(y, naiveLinear(x, rows: rows, exact, out: n, in: k, bias: bias)) < 1e-4)

        // accumulate adds to what is there
        let before = y
        multiplier.linear(x, rows: rows, weight: weight, bias: nil, into: &y, accumulate: true)
        let product = naiveLinear(x, rows: rows, exact, out: n, in: k, bias: nil)
        #expect(maxError(y, zip(before, product).map { $0 + $1 }) < 1e-4)
    }

    /// VoCoKernels behind the seam against OpenBLAS on the same mapped weights, every ISA level
    /// (the kernels' own tests cover odd shapes and special values).
    @Test(arguments: KernelISA.allCases, [DType.f32, .f16, .bf16])
    func kernelMultiplierMatchesOpenBLAS(isa: KernelISA, dtype: DType) throws {
        if !isa.isSupported { try Test.cancel("skipped: this CPU cannot run \(isa) kernels") }
        let kernels = KernelMultiplier(threads: ComputeThreads(count: 2), isa: isa)
        #expect(kernels.isa == isa)
        let n = 150, k = 70
        let (weight, _) = try mappedWeight(randomFloats(n * k, seed: 1), rows: n, columns: k, dtype: dtype)
        for rows in [1, 3, 8, 9, 40] {
            let x = randomFloats(rows * k, seed: 2), bias = randomFloats(n, seed: 3)
            var expected = [Float](repeating: 0, count: rows * n), actual = expected
            multiplier.linear(x, rows: rows, weight: weight, bias: bias, into: &expected, accumulate: false)
            kernels.linear(x, rows: rows, weight: weight, bias: bias, into: &actual, accumulate: false)
            #expect(maxError(actual, expected) < 1e-5, "\(isa) \(dtype) rows \(rows)")
        }
    }

    @Test func widenedWeightEqualsMappedWeight() throws {
        let (weight, exact) = try mappedWeight(randomFloats(12 * 5, seed: 4), rows: 12, columns: 5, dtype: .f16)
        let widened = weight.widened()
        #expect(widened.dtype == .f32)
        #expect(Array(UnsafeBufferPointer(start: widened.float32, count: 60)) == exact)
    }

    @Test func gemmTransposesAsAsked() {
        let a: [Float] = [1, 2, 3, 4, 5, 6]  // [2][3]
        let b: [Float] = [1, 0, 0, 1, 1, 1]  // [3][2] or, transposed, [2][3]
        var c = [Float](repeating: 0, count: 4)
        multiplier.gemm(m: 2, n: 2, k: 3, alpha: 1, a: a, lda: 3, b: b, ldb: 2, bTransposed: false, beta: 0, c: &c, ldc: 2)
        #expect(c == [4, 5, 10, 11])
        multiplier.gemm(m: 2, n: 2, k: 3, alpha: 2, a: a, lda: 3, b: b, ldb: 3, bTransposed: true, beta: 0, c: &c, ldc: 2)
        #expect(c == [2, 12, 8, 30])
    }

    @Test func nestedRegionsRunOnTheirWorker() {
        let threads = ComputeThreads(count: 2)
        let lock = NSLock()
        var pairs: [(outer: Int, inner: Int)] = []
        threads.forEach(8) { _, outer in
            threads.forEach(3) { _, inner in
                lock.lock()
                pairs.append((outer, inner))
                lock.unlock()
            }
        }
        #expect(pairs.count == 24)
        #expect(pairs.allSatisfy { $0.outer == $0.inner })
    }

    @Test func everyItemRunsOnceOnAValidWorker() {
        let threads = ComputeThreads(count: 2)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 101)
        counts.initialize(repeating: 0, count: 101)
        defer { counts.deallocate() }
        threads.forEach(101) { item, worker in
            precondition(worker >= 0 && worker < 2)
            counts[item] += 1  // each item is touched by exactly one worker
        }
        #expect((0..<101).allSatisfy { counts[$0] == 1 })
    }
}

func maxError(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
