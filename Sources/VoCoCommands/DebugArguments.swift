import ArgumentParser
import Foundation
import SafeTensors
import VoCoModel

// MARK: - Arguments shared by the engine's debug commands

/// `--model DIR`, loaded with the default weight policy on the chosen backend.
struct ModelOption: ParsableArguments {
    @Option(help: "Model directory (config.json + safetensors).")
    var model: String

    @OptionGroup var compute: BackendOptions

    func load() throws -> VoCoEngine {
        let engine = try VoCoEngine(directory: model, options: compute.loadOptions)
        compute.report(engine)
        return engine
    }
}

/// The text ids of a query: `--tokens 5,6,7` or `--tokens-file FILE`.
struct TokenOptions: ParsableArguments {
    @Option(help: "Text token ids, comma-separated (no BOS).")
    var tokens: String?

    @Option(help: "A file of token ids (separated by commas, spaces or newlines, or a JSON array).")
    var tokensFile: String?

    func ids() throws -> [Int] {
        let text: String
        switch (tokens, tokensFile) {
        case let (list?, nil): text = list
        case let (nil, path?):
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw ValidationError("\(path): cannot read token ids: \(error.localizedDescription)")
            }
        default: throw ValidationError("give exactly one of --tokens and --tokens-file")
        }
        let ids = try parseIntegers(text, what: "token id", option: tokens == nil ? "--tokens-file" : "--tokens")
        guard !ids.isEmpty else { throw ValidationError("no token ids given") }
        return ids
    }
}

/// The caches of a query: `--caches FILE` (written by `voco debug compress`) and `--images`.
struct CacheOptions: ParsableArguments {
    @Option(help: "A safetensors file with voco_k and voco_v [N,layers,rows,width] (from `voco debug compress`); omit for text only.")
    var caches: String?

    @Option(help: "Which images of --caches, in placement order (e.g. 2,0,1), or 'none'; default all in file order.")
    var images: String?

    @Option(help: "sequential or shared; default the model's layout.")
    var layout: CacheLayout?

    func load(engine: VoCoEngine) throws -> [VoCoCache] {
        let selection: [Int]? = try images.map { $0 == "none" ? [] : try parseIntegers($0, what: "image index", option: "--images") }
        guard let caches else {
            if let selection, !selection.isEmpty { throw ValidationError("--images needs --caches") }
            return []
        }
        return try CompressionFile.readCaches(path: caches, engine: engine, images: selection)
    }
}

extension CacheLayout: ExpressibleByArgument {}
extension VoCoMode: ExpressibleByArgument {}

func parseIntegers(_ text: String, what: String, option: String) throws -> [Int] {
    let separators = CharacterSet(charactersIn: ",[] \t\r\n")
    return try text.components(separatedBy: separators).filter { !$0.isEmpty }.map {
        guard let n = Int($0) else { throw ValidationError("\(option): '\($0)' is not a \(what) (an integer of 64 bits)") }
        return n
    }
}
