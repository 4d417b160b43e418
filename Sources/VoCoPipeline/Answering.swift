import Foundation
import VoCoModel
import VoCoTokenizer

// MARK: - A question over caches -> an answer (the query pass)

public struct Answer: Sendable, Equatable {
    /// The decoded answer, special tokens skipped, surrounding whitespace trimmed.
    public var text: String
    /// Generated ids, without the stop token.
    public var tokens: [Int]
    public var stop: GenerationResult.Stop
    public var promptTokens: Int
    /// How many image caches the question attended to.
    public var images: Int
}

extension AnsweringModel {
    /// Answers `question` over `caches` (in the order the question numbers the images), placed
    /// by the model's layout. Refuses, before computing, a question that does not fit the context.
    /// `onText` receives the answer as it is generated (UTF-8-safe chunks).
    public func answer(_ question: String, caches: [VoCoCache], options: GenerationOptions = GenerationOptions(maxNewTokens: 32),
                       onText: ((String) -> Void)? = nil) throws -> Answer {
        guard !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw PipelineError.emptyQuestion }
        let prompt = promptIds(for: question)
        let placement = CachePlacement(caches: caches, layout: settings.layout)
        let needed = placement.textStart + prompt.count + max(0, options.maxNewTokens)
        guard needed <= contextLength else {
            throw PipelineError.contextTooSmall(images: caches.count, imageRows: caches.reduce(0) { $0 + $1.rows },
                                                promptTokens: prompt.count, answerTokens: options.maxNewTokens,
                                                needed: needed, contextLength: contextLength)
        }
        var stream = tokenizer.streamingDecoder(skipSpecialTokens: true)
        let result = try engine.generate(caches: caches, prompt: prompt, options: options, onToken: onText.map { emit in
            { token in
                let chunk = stream.push(token)
                if !chunk.isEmpty { emit(chunk) }
                return true
            }
        })
        if let onText {
            let rest = stream.finish()
            if !rest.isEmpty { onText(rest) }
        }
        let text = tokenizer.decode(result.tokens, skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines)
        return Answer(text: text, tokens: result.tokens, stop: result.stop, promptTokens: prompt.count, images: caches.count)
    }
}
