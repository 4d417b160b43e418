import ArgumentParser
import Foundation
import SafeTensors
import VoCoModel

/// `voco debug query`: the query pass over saved caches and token ids; writes every text position's logits.
struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Run the query pass over caches from `voco debug compress` plus token ids and save logits [T,vocab]."
    )

    @OptionGroup var model: ModelOption
    @OptionGroup var caches: CacheOptions
    @OptionGroup var tokens: TokenOptions

    @Option(help: "Where to write logits [T,vocab] (safetensors).")
    var out: String

    func run() throws {
        let engine = try model.load()
        let placed = try caches.load(engine: engine)
        let ids = try tokens.ids()
        let logits = try engine.queryLogits(caches: placed, layout: caches.layout, tokens: ids)
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        try writer.add("logits", shape: [ids.count, engine.text.vocabSize], floats: logits)
        try writer.write(to: out)
        let placement = CachePlacement(caches: placed, layout: caches.layout ?? engine.settings.layout)
        print("\(placed.count) image(s) at \(placement.starts), \(ids.count) token(s) from position \(placement.textStart) -> \(out)")
    }
}

/// `voco debug generate`: greedy or sampled continuation of a query, printed as ids.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate token ids after caches and a prompt (greedy, or seeded temperature/top-p sampling)."
    )

    @OptionGroup var model: ModelOption
    @OptionGroup var caches: CacheOptions
    @OptionGroup var tokens: TokenOptions

    @OptionGroup var sampling: SamplingOptions

    func run() throws {
        let engine = try model.load()
        let result = try engine.generate(caches: caches.load(engine: engine), layout: caches.layout, prompt: tokens.ids(),
                                         options: sampling.generation)
        print(result.tokens.map(String.init).joined(separator: ","))
        switch result.stop {
        case let .stopToken(t): FileHandle.standardError.write(Data("stopped on token \(t)\n".utf8))
        case .tokenLimit: FileHandle.standardError.write(Data("stopped at the limit of \(sampling.maxTokens) tokens\n".utf8))
        case .stoppedByCaller: break
        }
    }
}
