import Foundation
import Testing
@testable import VoCoModel

@Suite struct ConfigurationTests {
    func decode(_ json: String) throws -> LlavaConfiguration {
        try ConfigFile.decode(LlavaConfiguration.self, data: Data(json.utf8), path: "config.json")
    }

    @Test func fixtureConfigReadsAsWritten() throws {
        let config = try LlavaConfiguration.load(path: Fixtures.model() + "/config.json")
        #expect(config.modelType == .llavaLlama)
        #expect(config.text.numKeyValueHeads == 2 && config.text.headDim == 12 && config.text.ropeTheta == 10000)
        #expect(config.multimodal?.projectorType == .mlp2xGELU && config.multimodal?.selectLayer == -2)
        #expect(config.vision?.patchCount == 16)
        #expect(config.voco == VoCoSettings(tokenId: 63, numTokens: 2, mode: .voco, layout: .sequential, compressionPrefixIds: [5, 9]))
    }

    @Test func encodingRoundTrips() throws {
        let config = try LlavaConfiguration.load(path: Fixtures.model() + "/config.json")
        let data = try JSONEncoder().encode(config)
        #expect(try ConfigFile.decode(LlavaConfiguration.self, data: data, path: "x") == config)
    }

    @Test func defaultsAndTheReferencePreset() throws {
        let config = try decode("""
            {"model_type": "llava_llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 128, "vocab_size": 32001, "rms_norm_eps": 1e-5, "rope_theta": 500000,
             "eos_token_id": null, "mm_hidden_size": 32, "voco": {}}
            """)
        #expect(config.text.numKeyValueHeads == 4 && config.text.headDim == 16 && config.text.ropeTheta == 500000)
        #expect(config.text.eosTokenIds.isEmpty && config.text.bosTokenId == 1 && !config.text.tieWordEmbeddings)
        #expect(config.multimodal == MultimodalConfiguration(mmHiddenSize: 32, projectorType: .linear, imageAspectRatio: "square"))
        #expect(config.voco == .reference)
        #expect(VoCoSettings.reference.tokenId == 32000 && VoCoSettings.reference.numTokens == 2)
        #expect(config.voco.prompt(for: "What is it?") == "What is it?")
    }

    @Test func textOnlyModelHasNoVisionSide() throws {
        let config = try decode("""
            {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 128, "vocab_size": 100, "rms_norm_eps": 1e-5, "mm_hidden_size": 7}
            """)
        #expect(config.multimodal == nil && config.vision == nil && config.voco == .plainLLaVA && !config.hasVoCoSection)
    }

    @Test func vocoTokenMustBeInTheVocabulary() throws {
        #expect(throws: ModelError.invalidConfigValue(path: "config.json", field: "voco.token_id", value: "32000",
                                                      expected: "an id inside the vocabulary (vocab_size 100)")) {
            try decode("""
                {"model_type": "llava_llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "intermediate_size": 128, "vocab_size": 100, "rms_norm_eps": 1e-5, "mm_hidden_size": 32,
                 "voco": {"mode": "voco"}}
                """)
        }
    }

    /// The demo's text-only lower bound: a `llama` model whose `voco` section carries only the
    /// prompt template, and never compresses an image, so no VoCo token id is needed.
    @Test func textOnlyModelReadsOnlyThePromptTemplate() throws {
        let config = try decode("""
            {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 128, "vocab_size": 100, "rms_norm_eps": 1e-5,
             "voco": {"prompt_template": "Q: {question} A:"}}
            """)
        #expect(config.multimodal == nil && config.voco.prompt(for: "Why?") == "Q: Why? A:")
    }
}
