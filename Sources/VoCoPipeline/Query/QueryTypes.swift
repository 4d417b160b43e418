import Foundation
import VoCoModel
import VoCoStore

// MARK: - A question over stored caches, and its answer

public struct QueryRequest: Sendable {
    /// A collection, or nil.
    public var collection: String?
    /// Narrows the collection to these images; with no collection, the images asked about.
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

/// An image the model read, in placement order.
public struct UsedImage: Sendable, Codable, Equatable {
    /// 1-based, as the model saw it: "image 2" is number 2.
    public var number: Int
    /// SHA-256 of the image file, hex.
    public var digest: String
    /// Position in the collection, when asked over a collection.
    public var ordinal: UInt64?
    /// The source name the store keeps for the image.
    public var name: String?
    /// The ranking score (probe log-odds) when the planner ranked, else nil.
    public var relevance: Double?

    public init(number: Int, digest: String, ordinal: UInt64? = nil, name: String? = nil, relevance: Double? = nil) {
        self.number = number
        self.digest = digest
        self.ordinal = ordinal
        self.name = name
        self.relevance = relevance
    }
}

/// A mention of an image in the answer ("image 2"), resolved to the image placed there.
public struct ImageReference: Sendable, Codable, Equatable {
    /// As written in the answer.
    public var text: String
    public var number: Int
    /// nil when the answer names an image that was not placed.
    public var digest: String?
    public var name: String?
}

public struct QueryTimings: Sendable, Codable, Equatable {
    /// Reading the store and decoding records (LRU misses).
    public var load: Double
    /// Ranking and choosing (the relevance probes).
    public var plan: Double
    /// Placing the caches and the prompt, to the first answer token.
    public var prefill: Double
    /// The rest of the answer.
    public var decode: Double
}

public struct QueryAnswer: Sendable {
    public var answer: String
    public var tokens: [Int]
    public var stop: GenerationResult.Stop
    public var used: [UsedImage]
    public var references: [ImageReference]
    /// Images the planner considered.
    public var candidates: Int
    /// True when not every candidate fit and the planner chose by relevance.
    public var ranked: Bool
    /// How the planner chose: "all" (every candidate fit, collection order), "head: <target>"
    /// (ranked by the model's trained relevance head), "probe: <probe question>" (ranked by the
    /// model's yes/no answer to the probe over each image alone), or "first" (no relevance rule
    /// matches the question: the first images in collection order).
    public var plan: String
    /// The model fingerprint.
    public var model: Digest
    public var timings: QueryTimings
}

/// Cache-LRU counters.
public struct CacheStatistics: Sendable, Codable, Equatable {
    public var hits: Int
    public var misses: Int
    public var evictions: Int
    public var entries: Int
    public var bytes: Int
    public var capacity: Int
}

/// Why a question over stored caches cannot be answered; each case names its input.
public enum QueryError: Error, CustomStringConvertible, LocalizedError, Sendable, Equatable {
    case emptyQuestion
    case unknownCollection(String)
    /// Not in the store.
    case unknownImage(Digest)
    case notInCollection(image: Digest, collection: String)
    /// The image is known but was never compressed for this model.
    case noRecord(image: Digest, model: Digest, collection: String?)
    /// The image has records, but only for other model fingerprints.
    case wrongModel(image: Digest, collection: String?, wanted: Digest, found: [Digest])
    /// An empty collection, or nothing to ask about.
    case noImages(collection: String?)
    /// Even one image, the prompt and the answer exceed the context.
    case doesNotFit(String)

    public var description: String {
        func inCollection(_ name: String?) -> String { name.map { " (collection \"\($0)\")" } ?? "" }
        switch self {
        case .emptyQuestion:
            return "the question is empty"
        case let .unknownCollection(name):
            return "no collection \"\(name)\" in the store"
        case let .unknownImage(digest):
            return "no image \(digest.hex) in the store"
        case let .notInCollection(image, collection):
            return "image \(image.hex) is not in collection \"\(collection)\""
        case let .noRecord(image, model, collection):
            return "image \(image.hex)\(inCollection(collection)) has no cache for model \(model.hex): ingest it with this model first"
        case let .wrongModel(image, collection, wanted, found):
            return "image \(image.hex)\(inCollection(collection)) has caches only for model(s) \(found.map(\.hex).joined(separator: ", ")), not for this model \(wanted.hex): ask with the model that made them, or ingest the image again with this one"
        case let .noImages(collection):
            return collection.map { "collection \"\($0)\" holds no images" } ?? "no images to ask about: name a collection or image digests"
        case let .doesNotFit(reason):
            return reason
        }
    }

    public var errorDescription: String? { description }
}
