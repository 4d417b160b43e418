import Foundation
import SafeTensors
import Testing
@testable import VoCoModel
import VoCoCompute

/// The engine against transformers on the same F32 weights: max abs error <= 1e-4, with every
/// backend (OpenBLAS and VoCoKernels at each ISA level this CPU has).
@Suite struct FixtureComparisonTests {
    static let tolerance: Float = 1e-4

    @Test(arguments: Fixtures.backends)
    func compressionMatchesTransformers(backend: ComputeBackend) throws {
        let engine = try Fixtures.engine(backend: backend)
        let result = try engine.compress(pixels: Fixtures.pixels(), images: 3)
        #expect(maxAbsDifference(result.features, try Fixtures.floats("vision_features")) <= Self.tolerance)
        #expect(maxAbsDifference(result.projected, try Fixtures.floats("projected")) <= Self.tolerance)
        #expect(maxAbsDifference(concatenated(result.caches, keys: true), try Fixtures.floats("voco_k")) <= Self.tolerance)
        #expect(maxAbsDifference(concatenated(result.caches, keys: false), try Fixtures.floats("voco_v")) <= Self.tolerance)
        #expect(result.caches.map(\.firstPosition) == [19, 19, 19])
        #expect(result.caches.map(\.rows) == [2, 2, 2])
    }

    @Test(arguments: [VoCoMode.full, .avgpool], Fixtures.backends)
    func otherModesKeepTheRowsTransformersKeeps(mode: VoCoMode, backend: ComputeBackend) throws {
        let engine = try Fixtures.engine(backend: backend)
        let result = try engine.compress(pixels: Fixtures.pixels(), images: 3, mode: mode)
        #expect(maxAbsDifference(concatenated(result.caches, keys: true), try Fixtures.floats("\(mode)_k")) <= Self.tolerance)
        #expect(maxAbsDifference(concatenated(result.caches, keys: false), try Fixtures.floats("\(mode)_v")) <= Self.tolerance)
        #expect(result.caches.map(\.firstPosition) == (try Fixtures.ints("\(mode)_first_position")))
    }

    @Test(arguments: Fixtures.backends)
    func classTokenFeaturesWithClsPatch(backend: ComputeBackend) throws {
        let dir = try editedModel { $0["mm_vision_select_feature"] = "cls_patch" }
        let engine = try VoCoEngine(directory: dir, options: LoadOptions(backend: try Fixtures.available(backend)))
        guard let vision = engine.vision else { Issue.record("no vision tower"); return }
        #expect(vision.featureCount == 17)
        let features = try Fixtures.pixels().withUnsafeBufferPointer {
            vision.features(pixels: $0.baseAddress!, images: 3, compute: engine.compute)
        }
        #expect(maxAbsDifference(features, try Fixtures.floats("vision_features_cls")) <= Self.tolerance)
    }

    @Test(arguments: Fixtures.backends)
    func singleImageQueryMatchesTransformers(backend: ComputeBackend) throws {
        let engine = try Fixtures.engine(backend: backend)
        let caches = try engine.compress(pixels: Fixtures.pixels(), images: 3).caches
        let logits = try engine.queryLogits(caches: [caches[0]], tokens: Fixtures.text())
        #expect(maxAbsDifference(logits, try Fixtures.floats("query_logits")) <= Self.tolerance)
    }

    @Test(arguments: Fixtures.backends)
    func twoPassesEqualTheMaskedSinglePass(backend: ComputeBackend) throws {
        let engine = try Fixtures.engine(backend: backend)
        let caches = try engine.compress(pixels: Fixtures.pixels(1), images: 1).caches
        let logits = try engine.queryLogits(caches: caches, tokens: Fixtures.text())
        #expect(maxAbsDifference(logits, try Fixtures.floats("single_pass_masked_logits")) <= Self.tolerance)
    }

    @Test(arguments: Fixtures.backends)
    func threeImagesPlacedByLayout(backend: ComputeBackend) throws {
        let engine = try Fixtures.engine(backend: backend)
        let caches = try engine.compress(pixels: Fixtures.pixels(), images: 3).caches
        let ordered = try Fixtures.ints("sequential_order").map { caches[$0] }
        let sequential = try engine.queryLogits(caches: ordered, layout: .sequential, tokens: Fixtures.text())
        #expect(maxAbsDifference(sequential, try Fixtures.floats("query_logits_sequential3")) <= Self.tolerance)
        let shared = try engine.queryLogits(caches: ordered, layout: .shared, tokens: Fixtures.text())
        #expect(maxAbsDifference(shared, try Fixtures.floats("query_logits_shared3")) <= Self.tolerance)
    }

    @Test(arguments: Fixtures.backends)
    func fullModeIsThePlainLLaVAForward(backend: ComputeBackend) throws {
        let engine = try Fixtures.engine(backend: backend)
        let caches = try engine.compress(pixels: Fixtures.pixels(1), images: 1, mode: .full).caches
        let logits = try engine.queryLogits(caches: caches, tokens: Fixtures.text())
        #expect(maxAbsDifference(logits, try Fixtures.floats("full_single_pass_logits")) <= Self.tolerance)
    }

    @Test(arguments: Fixtures.backends)
    func avgpoolModeIsThePooledForward(backend: ComputeBackend) throws {
        let engine = try Fixtures.engine(backend: backend)
        let caches = try engine.compress(pixels: Fixtures.pixels(1), images: 1, mode: .avgpool).caches
        let logits = try engine.queryLogits(caches: caches, tokens: Fixtures.text())
        #expect(maxAbsDifference(logits, try Fixtures.floats("avgpool_single_pass_logits")) <= Self.tolerance)
    }

    @Test(arguments: Fixtures.backends)
    func textOnlyQueryStartsAtPositionZero(backend: ComputeBackend) throws {
        let engine = try Fixtures.engine(backend: backend)
        let logits = try engine.queryLogits(caches: [], tokens: Fixtures.text())
        #expect(maxAbsDifference(logits, try Fixtures.floats("query_logits_text_only")) <= Self.tolerance)
    }

    @Test(arguments: Fixtures.backends)
    func greedyDecodingFollowsTransformers(backend: ComputeBackend) throws {
        let engine = try Fixtures.engine(backend: backend)
        let caches = try engine.compress(pixels: Fixtures.pixels(1), images: 1).caches
        let expected = try Fixtures.ints("greedy_tokens")
        let result = try engine.generate(caches: caches, prompt: Fixtures.text(),
                                         options: GenerationOptions(maxNewTokens: expected.count, stopTokens: []))
        #expect(result.tokens == expected)
        #expect(result.stop == .tokenLimit)
    }

    @Test(arguments: Fixtures.backends)
    func tiedWordEmbeddingsUseTheEmbeddingTable(backend: ComputeBackend) throws {
        let dir = try editedModel { $0["tie_word_embeddings"] = true }
        let file = try SafeTensorsFile(path: dir + "/model.safetensors")
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        try rewriteTensors(file, to: dir + "/model.safetensors") { $0 == "lm_head.weight" ? nil : $0 }
        let engine = try VoCoEngine(directory: dir, options: LoadOptions(backend: try Fixtures.available(backend)))
        let caches = try engine.compress(pixels: Fixtures.pixels(1), images: 1).caches
        let logits = try engine.queryLogits(caches: caches, tokens: Fixtures.text())
        #expect(maxAbsDifference(logits, try Fixtures.floats("query_logits_tied")) <= Self.tolerance)
    }
}
