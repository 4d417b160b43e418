import Foundation

// MARK: - Generating an answer

public struct GenerationOptions: Sendable {
    /// Tokens to generate at most (the stop token not counted).
    public var maxNewTokens: Int
    /// 0 = greedy.
    public var temperature: Float
    /// Nucleus mass kept when sampling (1 = all).
    public var topP: Float
    public var seed: UInt64
    /// Tokens that end the answer; `nil` = the model's `eos_token_id`s.
    public var stopTokens: [Int]?

    public init(maxNewTokens: Int = 64, temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0, stopTokens: [Int]? = nil) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
        self.stopTokens = stopTokens
    }
}

public struct GenerationResult: Sendable, Equatable {
    public enum Stop: Sendable, Equatable {
        case stopToken(Int)
        case tokenLimit
        /// `onToken` returned false.
        case stoppedByCaller
    }
    /// Generated ids, without the stop token.
    public var tokens: [Int]
    public var stop: Stop
}

extension VoCoEngine {
    /// Answers `prompt` (text ids, no BOS) after `caches` placed by `layout`: greedy or seeded
    /// sampling until a stop token or `maxNewTokens`. `onToken` sees each new id and may return
    /// false to stop early.
    public func generate(caches: [VoCoCache], layout: CacheLayout? = nil, prompt: [Int], options: GenerationOptions,
                         onToken: ((Int) -> Bool)? = nil) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw ModelError.invalidArgument("generation needs at least one prompt token") }
        let limit = max(0, options.maxNewTokens)
        // Refused before anything is allocated: a huge token limit must not size the cache.
        let textStart = CachePlacement(caches: caches, layout: layout ?? settings.layout).textStart
        let needed = [textStart, prompt.count, limit].reduce(0, saturatingSum)
        guard needed <= text.maxPositionEmbeddings else {
            throw ModelError.exceedsContext(needed: needed, context: text.maxPositionEmbeddings)
        }
        let session = try QuerySession(engine: self, caches: caches, layout: layout, textCapacity: prompt.count + limit)
        let sampler = TokenSampler(vocabularySize: text.vocabSize, temperature: options.temperature, topP: options.topP, seed: options.seed)
        let stops = Set(options.stopTokens ?? text.eosTokenIds)
        var tokens: [Int] = []
        tokens.reserveCapacity(limit)
        var logits = try session.append(prompt)
        while tokens.count < limit {
            try checkFinite(logits, position: session.nextPosition - 1)
            let next = sampler.next(logits)
            if stops.contains(next) { return GenerationResult(tokens: tokens, stop: .stopToken(next)) }
            tokens.append(next)
            if let onToken, !onToken(next) { return GenerationResult(tokens: tokens, stop: .stoppedByCaller) }
            if tokens.count == limit { break }
            logits = try session.append(token: next)
        }
        return GenerationResult(tokens: tokens, stop: .tokenLimit)
    }

    /// Refuses NaN or infinite logits (`[vocab]`) by name: sampling would quietly pick token 0.
    func checkFinite(_ logits: UnsafeBufferPointer<Float>, position: Int) throws {
        guard logits.allFinite else { throw ModelError.nonFinite(directory: directory, what: "the logits at position \(position)") }
    }
}

extension Sequence where Element == Float {
    /// No NaN and no infinity (x * 0 is NaN exactly for those).
    var allFinite: Bool { reduce(Float(0)) { $0 + $1 * 0 } == 0 }
}
