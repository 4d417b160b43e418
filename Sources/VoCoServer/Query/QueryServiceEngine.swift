import Foundation
import VoCoPipeline
import VoCoStore

// MARK: - The query library behind the API

/// `QueryService` as the server's engine: the request in, the answer out in the API's shape,
/// and the library's errors as the API's problem types.
public final class QueryServiceEngine: QueryEngine, @unchecked Sendable {
    public let service: QueryService

    public init(_ service: QueryService) { self.service = service }

    public var fingerprint: Digest { service.fingerprint }
    public var contextLength: Int { service.model.contextLength }

    public var cacheCounters: EngineCacheCounters {
        let s = service.cacheStatistics
        return EngineCacheCounters(hits: s.hits, misses: s.misses, evictions: s.evictions, bytes: s.bytes, capacity: s.capacity)
    }

    public func ask(_ input: AskInput, onText: ((String) -> Void)?) throws -> AskAnswer {
        let request = QueryRequest(collection: input.collection, images: input.images, question: input.question, generation: input.generation)
        let answer: QueryAnswer
        do { answer = try service.ask(request, onText: onText) } catch let error as QueryError { throw Self.problem(error) }
        return Self.view(answer)
    }

    /// The answer as the API shows it.
    public static func view(_ answer: QueryAnswer) -> AskAnswer {
        AskAnswer(
            answer: answer.answer, tokens: answer.tokens, stop: AskAnswer.stopName(answer.stop),
            used: answer.used, references: answer.references,
            candidates: answer.candidates, ranked: answer.ranked, plan: answer.plan, model: answer.model.hex, timings: answer.timings)
    }

    /// Each of the library's errors has its problem type; the detail is the library's text,
    /// which names the collection, the image and both fingerprints where they apply.
    public static func problem(_ error: QueryError) -> Problem {
        let type: ProblemType
        switch error {
        case .emptyQuestion: return Problem(.invalidField, "question: \(error)")
        case .unknownCollection: type = .unknownCollection
        case .unknownImage: type = .unknownImage
        case .notInCollection: type = .notInCollection
        case .noRecord: type = .noRecord
        case .wrongModel: type = .wrongModel
        case .noImages: type = .noImages
        case .doesNotFit: type = .doesNotFit
        }
        return Problem(type, error.description)
    }
}
