import Foundation
import Testing
import VoCoKernels

/// SiLU x up and quick_gelu with the vectorised exp, against the formulas in Double, over
/// ordinary values, the ends of exp's range, infinities and NaN, at every ISA level.
@Suite struct ActivationTests {
    static let inputs: [Float] = {
        var values = randomFloats(1000, seed: 3).map { $0 * 12 }
        values += [0, -0, 1e-30, -1e-30, 20, -20, 87, -87, 88.5, -88.5, 100, -100, 1e30, -1e30, .infinity, -.infinity, .nan]
        return values + [1, 2, 3]  // a tail that is not a whole vector
    }()

    /// Within the error that rounding exp's F32 argument `argument` brings (|argument| ulp-ish)
    /// plus a few ulp; NaN where NaN, infinities exactly.
    static func close(_ actual: Float, _ expected: Double, argument: Double) -> Bool {
        if expected.isNaN { return actual.isNaN }
        if expected.isInfinite { return Double(actual) == expected }
        let bound = 1.2e-7 * (3 + min(abs(argument), 200)) * abs(expected) + 1e-38
        return abs(Double(actual) - expected) <= bound
    }

    @Test(arguments: Levels.all)
    func siluTimesUpMatchesTheFormula(isa: Int32) throws {
        try Levels.requireSupported(isa)
        let up = randomFloats(Self.inputs.count, seed: 4)
        var gate = Self.inputs
        vk_silu_mul(isa, &gate, up, gate.count)
        for (i, g) in Self.inputs.enumerated() {
            // -inf gives NaN, as PyTorch's x * sigmoid(x) does (-inf * 0).
            let x = Double(g), expected = x == -.infinity ? .nan : x / (1 + exp(-x)) * Double(up[i])
            #expect(Self.close(gate[i], expected, argument: x), "\(Levels.name(isa)) silu(\(g)) * \(up[i]) = \(gate[i]), expected \(expected)")
        }
    }

    @Test(arguments: Levels.all)
    func quickGELUMatchesTheFormula(isa: Int32) throws {
        try Levels.requireSupported(isa)
        var x = Self.inputs
        vk_quick_gelu(isa, &x, x.count)
        for (i, v) in Self.inputs.enumerated() {
            let d = Double(v), expected = d == -.infinity ? .nan : d / (1 + exp(-1.702 * d))
            #expect(Self.close(x[i], expected, argument: 1.702 * d), "\(Levels.name(isa)) quick_gelu(\(v)) = \(x[i]), expected \(expected)")
        }
    }
}
