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
    /// `onTimings` receives the seconds until the first answer token was chosen (placing the
    /// caches and the prompt's prefill) and the seconds of decoding after it.
    public func answer(_ question: String, caches: [VoCoCache], options: GenerationOptions = GenerationOptions(maxNewTokens: 32),
                       onText: ((String) -> Void)? = nil, onTimings: ((_ prefill: Double, _ decode: Double) -> Void)? = nil) throws -> Answer {
        guard !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw PipelineError.emptyQuestion }
        let prompt = promptIds(for: question)
        let placement = CachePlacement(caches: caches, layout: settings.layout)
        try checkContext(textStart: placement.textStart, images: caches.count, imageRows: caches.reduce(0) { $0 + $1.rows },
                         promptTokens: prompt.count, answerTokens: options.maxNewTokens)
        var stream = tokenizer.streamingDecoder(skipSpecialTokens: true)
        let started = DispatchTime.now().uptimeNanoseconds
        var firstToken: UInt64?
        let result = try engine.generate(caches: caches, prompt: prompt, options: options, onToken: onText == nil && onTimings == nil ? nil : { token in
            if firstToken == nil { firstToken = DispatchTime.now().uptimeNanoseconds }
            if let onText {
                let chunk = stream.push(token)
                if !chunk.isEmpty { onText(chunk) }
            }
            return true
        })
        if let onTimings {
            let ended = DispatchTime.now().uptimeNanoseconds, first = firstToken ?? ended
            onTimings(Double(first - started) / 1e9, Double(ended - first) / 1e9)
        }
        if let onText {
            let rest = stream.finish()
            if !rest.isEmpty { onText(rest) }
        }
        let text = tokenizer.decode(result.tokens, skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines)
        return Answer(text: text, tokens: result.tokens, stop: result.stop, promptTokens: prompt.count, images: caches.count)
    }
}

// MARK: - Checks before any image is compressed

extension AnsweringModel {
    /// Refuses, from the settings alone and before any image is read or compressed, a question
    /// over `images` images whose caches, prompt and answer cannot fit the context.
    public func checkQuestion(_ question: String, images: Int, options: GenerationOptions) throws {
        guard !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw PipelineError.emptyQuestion }
        guard images > 0, let rows = rowsPerImage else {
            if images > 0 { throw PipelineError.textOnlyModel(path: directory) }
            return try checkContext(textStart: 0, images: 0, imageRows: 0, promptTokens: promptIds(for: question).count,
                                    answerTokens: options.maxNewTokens)
        }
        let imageRows = saturatingProduct(images, rows)
        // Where the text starts (CachePlacement): after every image in `sequential`, after one in `shared`.
        let textStart = saturatingSum(firstCachePosition, settings.layout == .sequential ? imageRows : rows)
        try checkContext(textStart: textStart, images: images, imageRows: imageRows,
                         promptTokens: promptIds(for: question).count, answerTokens: options.maxNewTokens)
    }

    /// Refuses more images than the model was trained to read at once (`voco.max_images`);
    /// with `allowOverMaximum` returns that refusal's text as a warning instead. No limit known:
    /// nil.
    public func checkImageCount(_ images: Int, allowOverMaximum: Bool = false) throws -> String? {
        guard let maximum = settings.maxImages, images > maximum else { return nil }
        let problem = PipelineError.tooManyImages(path: directory, images: images, maximum: maximum)
        if allowOverMaximum { return problem.description }
        throw problem
    }

    private func checkContext(textStart: Int, images: Int, imageRows: Int, promptTokens: Int, answerTokens: Int) throws {
        let needed = saturatingSum(saturatingSum(textStart, promptTokens), max(0, answerTokens))
        guard needed <= contextLength else {
            throw PipelineError.contextTooSmall(images: images, imageRows: imageRows, promptTokens: promptTokens,
                                                answerTokens: answerTokens, needed: needed, contextLength: contextLength)
        }
    }
}
