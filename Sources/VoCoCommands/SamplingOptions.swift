import ArgumentParser
import VoCoModel

/// How an answer is generated: `--max-tokens`, `--temperature`, `--top-p`, `--seed`
/// (`voco ask` and `voco debug generate`). Values that sampling cannot use are refused by name
/// instead of quietly meaning something else (a negative temperature is not greedy decoding).
struct SamplingOptions: ParsableArguments {
    @Option(help: "Answer tokens to generate at most.")
    var maxTokens = 32

    @Option(help: "Sampling temperature (0 = greedy).")
    var temperature: Float = 0

    @Option(help: "Nucleus sampling mass kept, in (0, 1] (with --temperature > 0).")
    var topP: Float = 1

    @Option(help: "Seed of the sampler.")
    var seed: UInt64 = 0

    func validate() throws {
        // A limit beyond the model's context is refused once the model is loaded, before generating.
        try require("max-tokens", maxTokens, in: 1...Int.max)
        guard temperature.isFinite, temperature >= 0 else {
            throw ValidationError("--temperature \(temperature): must be 0 (greedy) or a positive number")
        }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw ValidationError("--top-p \(topP): must be in (0, 1]") }
    }

    var generation: GenerationOptions {
        GenerationOptions(maxNewTokens: maxTokens, temperature: temperature, topP: topP, seed: seed)
    }
}
