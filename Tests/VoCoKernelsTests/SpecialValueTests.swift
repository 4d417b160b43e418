import Foundation
import SafeTensors
import Testing
import VoCoKernels

/// Half values at the edges of their range: every F16 and BF16 bit pattern widens exactly, and
/// subnormal, infinite and NaN weights flow through the products as they do through OpenBLAS.
@Suite struct SpecialValueTests {
    static let pool = vk_pool_create(2, -1)

    @Test(arguments: Levels.all)
    func everyHalfBitPatternWidensExactly(isa: Int32) throws {
        try Levels.requireSupported(isa)
        let bits = (0...UInt16.max).map { $0 }
        for code in [f16Code, bf16Code] {
            var out = [Float](repeating: 0, count: bits.count)
            bits.withUnsafeBytes { vk_convert(isa, $0.baseAddress, code, bits.count, &out) }
            var wrong = 0
            for (i, h) in bits.enumerated() {
                let expected = code == f16Code ? float16BitsToFloat(h) : bfloat16BitsToFloat(h)
                let same = expected.isNaN ? out[i].isNaN : out[i].bitPattern == expected.bitPattern
                if !same { wrong += 1 }
            }
            #expect(wrong == 0, "\(Levels.name(isa)) type \(code): \(wrong) patterns widen wrongly")
        }
    }

    /// Weights with subnormals, ±infinity and NaN in chosen places, against OpenBLAS on their
    /// exact F32 values: the same NaN and infinite outputs, the finite ones within rounding.
    @Test(arguments: Levels.all, [1, 3, 8, 9, 40])
    func specialWeightsPropagateLikeOpenBLAS(isa: Int32, rows m: Int) throws {
        try Levels.requireSupported(isa)
        let n = 37, k = 45
        for code in [f16Code, bf16Code] {
            let inf: UInt16 = code == f16Code ? 0x7c00 : 0x7f80
            let nan: UInt16 = code == f16Code ? 0x7e00 : 0x7fc0
            let subnormals: [UInt16] = code == f16Code ? [0x0001, 0x03ff, 0x8001, 0x0200] : [0x0001, 0x007f, 0x8001, 0x0040]
            var bits = StoredWeight(randomFloats(n * k, seed: 9), code: code).bits
            for (i, s) in subnormals.enumerated() { for j in stride(from: i, to: n, by: 4) { bits[j * k + (j + i) % k] = s } }
            bits[3 * k + 44] = inf  // the k tail of row 3
            bits[5 * k + 0] = inf | 0x8000  // -inf
            bits[11 * k + 17] = nan
            bits[36 * k + 40] = nan  // last row, k tail
            let weight = StoredWeight(halfBits: bits, code: code)
            let x = randomFloats(m * k, seed: 10).map { abs($0) + 0.01 }  // positive: +inf stays +inf
            let expected = referenceProduct(x, m: m, weight.floats, n: n, k: k)
            let magnitude = referenceProduct(x, m: m, weight.floats.map(abs), n: n, k: k)
            var y = [Float](repeating: 0, count: m * n)
            weight.withUnalignedStorage { w in vk_linear(Self.pool, isa, x, m, k, w, code, n, k, k, nil, &y, n, 0) }
            let check = agrees(y, expected, magnitude: magnitude)
            #expect(check.ok, "\(Levels.name(isa)) type \(code) rows \(m): \(check.worst)")
            #expect(y[3].isInfinite && y[5] == -.infinity && y[11].isNaN && y[36].isNaN)
            // A subnormal-only row gives the exact tiny sum, not zero.
            let tiny = StoredWeight(halfBits: [UInt16](repeating: subnormals[0], count: k), code: code)
            var t = [Float](repeating: 0, count: 1)
            let ones = [Float](repeating: 1, count: k)
            tiny.withUnalignedStorage { w in vk_linear(nil, isa, ones, 1, k, w, code, 1, k, k, nil, &t, 1, 0) }
            #expect(t[0] == Float(k) * tiny.floats[0])
        }
    }

    @Test(arguments: Levels.all)
    func nanActivationsPoisonOnlyTheirRow(isa: Int32) throws {
        try Levels.requireSupported(isa)
        for m in [2, 12] {
            let n = 19, k = 21
            var x = randomFloats(m * k, seed: 3)
            x[1 * k + 20] = .nan
            let weight = StoredWeight(randomFloats(n * k, seed: 4), code: f16Code)
            var y = [Float](repeating: 0, count: m * n)
            weight.withUnalignedStorage { w in vk_linear(Self.pool, isa, x, m, k, w, f16Code, n, k, k, nil, &y, n, 0) }
            #expect((0..<n).allSatisfy { y[n + $0].isNaN })
            #expect((0..<n).allSatisfy { !y[$0].isNaN })
        }
    }
}
