import Foundation
import Testing
@testable import VoCoModel

/// The batched probe pass against the query pass it batches: one cache at a time.
@Suite struct ProbePassTests {
    @Test func eachCacheGetsWhatItsOwnQueryPassGives() throws {
        let engine = try Fixtures.engine()
        let caches = try engine.compress(pixels: Fixtures.pixels(3), images: 3).caches
        let text = try Fixtures.text()
        let tokens = [0, 3, engine.text.vocabSize - 1]
        // Batches of 2: one full batch and one of a single cache.
        let probed = try engine.probeLogits(caches: caches, prompt: text, tokens: tokens, batch: 2)
        #expect(probed.count == caches.count)
        let vocab = engine.text.vocabSize
        for (cache, row) in zip(caches, probed) {
            let alone = try engine.queryLogits(caches: [cache], tokens: text)
            let last = Array(alone[((text.count - 1) * vocab)...])
            #expect(maxAbsDifference(row, tokens.map { last[$0] }) <= 1e-4)
        }
    }

    @Test func badInputsAreRefusedByName() throws {
        let engine = try Fixtures.engine()
        let caches = try engine.compress(pixels: Fixtures.pixels(1), images: 1).caches
        #expect(throws: ModelError.self) { try engine.probeLogits(caches: caches, prompt: [], tokens: [0]) }
        #expect(throws: ModelError.self) { try engine.probeLogits(caches: caches, prompt: [1], tokens: [-1]) }
        #expect(throws: ModelError.self) { try engine.probeLogits(caches: caches, prompt: [engine.text.vocabSize], tokens: [0]) }
        #expect(try engine.probeLogits(caches: [], prompt: [1], tokens: [0]).isEmpty)
    }
}
