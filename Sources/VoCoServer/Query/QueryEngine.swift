import Foundation
import VoCoModel
import VoCoPipeline
import VoCoStore

// MARK: - What the query server asks questions of

/// A question as the server parsed it from `POST /v1/ask`.
public struct AskInput: Sendable, Equatable {
    public var collection: String?
    public var images: [Digest]
    public var question: String
    public var maxTokens: Int
    public var temperature: Float
    public var topP: Float
    public var seed: UInt64

    public init(collection: String? = nil, images: [Digest] = [], question: String, maxTokens: Int = 32, temperature: Float = 0,
                topP: Float = 1, seed: UInt64 = 0) {
        self.collection = collection
        self.images = images
        self.question = question
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
    }

    public var generation: GenerationOptions {
        GenerationOptions(maxNewTokens: maxTokens, temperature: temperature, topP: topP, seed: seed)
    }
}

/// The answer as the API shows it (Schemas/query-api.json, `Answer`).
public struct AskAnswer: Codable, Sendable, Equatable {
    /// The library's types are the API's: the same fields, encoded under the same names.
    public typealias Used = UsedImage
    public typealias Reference = ImageReference
    public typealias Timings = QueryTimings

    public var answer: String
    public var tokens: [Int]
    /// stop-token, token-limit or stopped.
    public var stop: String
    public var used: [Used]
    public var references: [Reference]
    public var candidates: Int
    public var ranked: Bool
    /// How the planner chose: "all", "head: <target>", "probes: <probe> | ..." or "first" (QueryAnswer.plan).
    public var plan: String
    public var model: String
    public var timings: Timings

    public init(answer: String, tokens: [Int], stop: String, used: [Used], references: [Reference], candidates: Int, ranked: Bool,
                plan: String, model: String, timings: Timings) {
        self.answer = answer
        self.tokens = tokens
        self.stop = stop
        self.used = used
        self.references = references
        self.candidates = candidates
        self.ranked = ranked
        self.plan = plan
        self.model = model
        self.timings = timings
    }

    public static func stopName(_ stop: GenerationResult.Stop) -> String {
        switch stop {
        case .stopToken: return "stop-token"
        case .tokenLimit: return "token-limit"
        case .stoppedByCaller: return "stopped"
        }
    }
}

/// The decoded-cache LRU's counters.
public struct EngineCacheCounters: Sendable, Equatable {
    public var hits, misses, evictions, bytes, capacity: Int
    public init(hits: Int = 0, misses: Int = 0, evictions: Int = 0, bytes: Int = 0, capacity: Int = 0) {
        self.hits = hits
        self.misses = misses
        self.evictions = evictions
        self.bytes = bytes
        self.capacity = capacity
    }
}

/// What answers questions: the query library's `QueryService` (QueryServiceEngine.swift). It
/// blocks while computing; the server calls it only on its own compute threads. Errors it
/// throws should be `Problem`s (the adapter maps the library's errors to the API's types).
public protocol QueryEngine: AnyObject, Sendable {
    /// The fingerprint of the model it answers with.
    var fingerprint: Digest { get }
    /// Answers; `onText` receives the answer's text as it is generated, in order.
    func ask(_ input: AskInput, onText: ((String) -> Void)?) throws -> AskAnswer
    var cacheCounters: EngineCacheCounters { get }
    /// The model's context, to refuse `max_tokens` past it before computing.
    var contextLength: Int { get }
}
