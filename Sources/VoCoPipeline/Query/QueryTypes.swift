import Foundation
import VoCoModel
import VoCoStore

// MARK: - A question over stored caches: request, answer, errors (the public contract)

/// A question over a stored collection, over chosen images, or over a collection narrowed to
/// chosen images.
public struct QueryRequest: Sendable {
    /// A collection, or nil.
    public var collection: String?
    /// Narrows the collection to these; with no collection, the images asked about (in this order).
    public var images: [Digest]
    public var question: String
    public var generation: GenerationOptions

    public init(collection: String? = nil, images: [Digest] = [], question: String,
                generation: GenerationOptions = GenerationOptions(maxNewTokens: 32)) {
        self.collection = collection
        self.images = images
        self.question = question
        self.generation = generation
    }
}

/// One image the model read, in placement order.
public struct UsedImage: Sendable, Codable, Equatable {
    /// 1-based, as the model saw it ("image 2" = number 2).
    public var number: Int
    /// SHA-256 hex of the image file.
    public var digest: String
    /// Position in the collection, when asked over a collection.
    public var ordinal: UInt64?
    /// The first source name of the store's images entry.
    public var name: String?
    /// The ranking score when the planner ranked, else nil.
    public var relevance: Double?

    public init(number: Int, digest: String, ordinal: UInt64? = nil, name: String? = nil, relevance: Double? = nil) {
        self.number = number
        self.digest = digest
        self.ordinal = ordinal
        self.name = name
        self.relevance = relevance
    }
}

/// An image the answer names ("image 2"), resolved to the placed image.
public struct ImageReference: Sendable, Codable, Equatable {
    /// As written in the answer, e.g. "image 2".
    public var text: String
    public var number: Int
    /// nil when the answer names an image that was not placed.
    public var digest: String?
    public var name: String?

    public init(text: String, number: Int, digest: String? = nil, name: String? = nil) {
        self.text = text
        self.number = number
        self.digest = digest
        self.name = name
    }
}

/// Seconds spent in each step of a question.
public struct QueryTimings: Sendable, Codable, Equatable {
    /// Reading the snapshot and decoding the caches (LRU misses).
    public var load: Double
    /// Ranking (the probe pass) and choosing what to place.
    public var plan: Double
    /// The prompt over the placed caches.
    public var prefill: Double
    /// Generating the answer after the prompt.
    public var decode: Double

    public init(load: Double = 0, plan: Double = 0, prefill: Double = 0, decode: Double = 0) {
        self.load = load
        self.plan = plan
        self.prefill = prefill
        self.decode = decode
    }
}

public struct QueryAnswer: Sendable {
    public var answer: String
    public var tokens: [Int]
    public var stop: GenerationResult.Stop
    /// The images placed, in placement order.
    public var used: [UsedImage]
    public var references: [ImageReference]
    /// Images the planner considered.
    public var candidates: Int
    /// True when not every candidate fit and the planner chose by relevance.
    public var ranked: Bool
    /// How the planner chose: "all" (every candidate fit: collection order), "head: <target>"
    /// (ranked by the model's trained relevance head), "probes: <probe> | ..." (ranked by the
    /// relevance.json probes asked of each image alone), or "first" (no rule matches the
    /// question: the first images in collection order that fit).
    public var plan: String
    /// The model fingerprint.
    public var model: Digest
    public var timings: QueryTimings

    public init(answer: String, tokens: [Int], stop: GenerationResult.Stop, used: [UsedImage], references: [ImageReference],
                candidates: Int, ranked: Bool, plan: String, model: Digest, timings: QueryTimings) {
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
}

/// What the decoded-cache LRU has done so far.
public struct CacheStatistics: Sendable, Codable, Equatable {
    public var hits: Int
    public var misses: Int
    public var evictions: Int
    /// Bytes held now.
    public var bytes: Int
    /// The bound on `bytes`.
    public var capacity: Int
    /// Caches held now.
    public var entries: Int

    public init(hits: Int = 0, misses: Int = 0, evictions: Int = 0, bytes: Int = 0, capacity: Int = 0, entries: Int = 0) {
        self.hits = hits
        self.misses = misses
        self.evictions = evictions
        self.bytes = bytes
        self.capacity = capacity
        self.entries = entries
    }
}

public enum QueryError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    case emptyQuestion
    case unknownCollection(String)
    /// Not in the store (or not in the collection when narrowing).
    case unknownImage(Digest)
    case notInCollection(image: Digest, collection: String)
    /// The image is known but was never compressed for this model.
    case noRecord(image: Digest, model: Digest, collection: String?)
    /// Records exist only for other fingerprints.
    case wrongModel(image: Digest, collection: String?, wanted: Digest, found: [Digest])
    /// An empty collection, or nothing to ask about.
    case noImages
    /// Even one image + prompt + answer exceeds the context.
    case doesNotFit(String)

    public var description: String {
        func inCollection(_ c: String?) -> String { c.map { " (collection \"\($0)\")" } ?? "" }
        switch self {
        case .emptyQuestion:
            return "the question is empty"
        case let .unknownCollection(name):
            return "no collection named \"\(name)\" in the store"
        case let .unknownImage(digest):
            return "image \(digest.hex): not in the store"
        case let .notInCollection(image, collection):
            return "image \(image.hex) is not a member of collection \"\(collection)\""
        case let .noRecord(image, model, collection):
            return "image \(image.hex)\(inCollection(collection)) has no record for model \(model.hex): it was never compressed by this model; ingest it again with this model"
        case let .wrongModel(image, collection, wanted, found):
            return "image \(image.hex)\(inCollection(collection)) has records only for model(s) \(found.map(\.hex).joined(separator: ", ")), not for this model \(wanted.hex): caches of another model are never used; ingest it again with this model"
        case .noImages:
            return "no images to ask about (the collection is empty, or none were given)"
        case let .doesNotFit(reason):
            return reason
        }
    }

    public var errorDescription: String? { description }
}
