import Foundation
import Testing
@testable import VoCoModel
import VoCoCompute

/// F16 and BF16 copies of the fixture checkpoint against transformers run on the same half
/// weights upcast to F32, so the bound measures the engine's error, not the rounding of the
/// weights. Both weight policies (widened once at load; mapped, read in place by the kernels or
/// widened per tile by OpenBLAS) with every backend.
@Suite struct HalfPrecisionTests {
    /// Observed: about 1e-6 (the references use exactly the weights we read); 1e-4 as for F32.
    static let tolerance: Float = 1e-4

    static let cases: [(dtype: String, policy: WeightPolicy)] = [("f16", .widenAtLoad), ("f16", .mapped), ("bf16", .widenAtLoad), ("bf16", .mapped)]

    @Test(arguments: cases, Fixtures.backends)
    func halfCheckpointMatchesTransformers(weights: (dtype: String, policy: WeightPolicy), backend: ComputeBackend) throws {
        let (dtype, policy) = weights
        let engine = try Fixtures.engine("tiny-llava-\(dtype)", policy: policy, backend: backend)
        #expect(engine.weightsWidened == (policy == .widenAtLoad))
        let suffix = "-\(dtype)"
        let result = try engine.compress(pixels: Fixtures.pixels(), images: 3)
        let errors: [(String, Float)] = [
            ("vision_features", maxAbsDifference(result.features, try Fixtures.floats("vision_features", suffix))),
            ("projected", maxAbsDifference(result.projected, try Fixtures.floats("projected", suffix))),
            ("voco_k", maxAbsDifference(concatenated(result.caches, keys: true), try Fixtures.floats("voco_k", suffix))),
            ("voco_v", maxAbsDifference(concatenated(result.caches, keys: false), try Fixtures.floats("voco_v", suffix))),
            ("query_logits", maxAbsDifference(try engine.queryLogits(caches: [result.caches[0]], tokens: Fixtures.text()),
                                              try Fixtures.floats("query_logits", suffix))),
            ("query_logits_sequential3", maxAbsDifference(
                try engine.queryLogits(caches: Fixtures.ints("sequential_order").map { result.caches[$0] }, layout: .sequential,
                                       tokens: Fixtures.text()),
                try Fixtures.floats("query_logits_sequential3", suffix))),
        ]
        for (name, error) in errors { #expect(error <= Self.tolerance, "\(name): \(error)") }
    }

    /// What rounding the weights costs, against the F32 model's references (not an engine
    /// error). Observed: F16 logits within 3e-3, BF16 within 3e-2 (logits of magnitude ~3).
    @Test(arguments: [("f16", Float(1e-2)), ("bf16", Float(1e-1))])
    func halfCheckpointStaysCloseToTheF32Model(dtype: String, bound: Float) throws {
        let engine = try Fixtures.engine("tiny-llava-\(dtype)")
        let caches = try engine.compress(pixels: Fixtures.pixels(1), images: 1).caches
        let logits = try engine.queryLogits(caches: caches, tokens: Fixtures.text())
        let error = maxAbsDifference(logits, try Fixtures.floats("query_logits"))
        #expect(error <= bound)
        #expect(error > 0, "the copy should differ from F32 at all")
    }
}
