import Foundation
import VoCoModel
import VoCoStore

// MARK: - Questions over stored collections (the read side)

/// Answers questions from stored caches: one read transaction per question loads the
/// candidates (a consistent snapshot while ingest writes), decoded caches stay in a byte-bounded
/// LRU, and the planner places every candidate when all fit, else ranks them with the model's
/// relevance probe and places the best. Nothing is compressed here. Thread-safe: questions may
/// come from many threads (the engine runs one forward pass at a time).
public final class QueryService: @unchecked Sendable {
    public let store: CacheStore
    public let model: AnsweringModel
    public let fingerprint: Digest
    public let relevance: RelevanceRules?
    /// The model's trained relevance head, when it has one (else the planner probes).
    public let head: RelevanceHead?
    public let lru: CacheLRU
    /// Caches per batched probe pass.
    public var probeBatch = 64

    public init(store: CacheStore, model: AnsweringModel, fingerprint: Digest, cacheBytes: Int = 256 << 20) throws {
        self.store = store
        self.model = model
        self.fingerprint = fingerprint
        relevance = try RelevanceRules.load(directory: model.directory, tokenizer: model.tokenizer)
        head = try RelevanceHead.load(directory: model.directory, fingerprint: fingerprint)
        lru = CacheLRU(capacity: cacheBytes)
    }

    /// Computes the model's fingerprint (using the store's hash cache).
    public convenience init(store: CacheStore, model: AnsweringModel, cacheBytes: Int = 256 << 20) throws {
        let fingerprint = try ModelFingerprint.compute(directory: model.directory, store: store)
        try self.init(store: store, model: model, fingerprint: fingerprint.fingerprint, cacheBytes: cacheBytes)
    }

    public var cacheStatistics: CacheStatistics { lru.statistics }

    /// Every "image N" in `answer`, resolved against `used` (placement order).
    public static func references(in answer: String, used: [UsedImage]) -> [ImageReference] {
        ImageMentions.resolve(answer, used: used)
    }

    struct Candidate {
        var digest: Digest
        var ordinal: UInt64?
        var name: String?
    }

    public func ask(_ request: QueryRequest, onText: ((String) -> Void)? = nil) throws -> QueryAnswer {
        let question = request.question
        guard !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw QueryError.emptyQuestion }
        // A question whose prompt and answer do not fit beside one image is refused before any read.
        do { try model.checkQuestion(question, images: 1, options: request.generation) } catch let error as PipelineError {
            throw QueryError.doesNotFit(error.description)
        }
        var clock = Stopwatch()
        let (candidates, caches) = try load(request)
        let load = clock.lap()

        let chosen = try plan(question, caches: caches, options: request.generation)
        let plan = clock.lap()

        var prefill = 0.0, decode = 0.0
        let answer = try model.answer(question, caches: chosen.order.map { caches[$0] }, options: request.generation, onText: onText) {
            prefill = $0
            decode = $1
        }
        let used = chosen.order.enumerated().map { number, index in
            UsedImage(number: number + 1, digest: candidates[index].digest.hex, ordinal: candidates[index].ordinal,
                      name: candidates[index].name, relevance: chosen.scores.map { Double($0[index]) })
        }
        return QueryAnswer(answer: answer.text, tokens: answer.tokens, stop: answer.stop, used: used,
                           references: ImageMentions.resolve(answer.text, used: used), candidates: candidates.count,
                           ranked: chosen.scores != nil, plan: chosen.description, model: fingerprint,
                           timings: QueryTimings(load: load, plan: plan, prefill: prefill, decode: decode))
    }

    // MARK: Loading, in one read transaction

    func load(_ request: QueryRequest) throws -> ([Candidate], [VoCoCache]) {
        try store.read { r in
            let candidates = try self.candidates(r, request)
            let caches = try candidates.map { candidate -> VoCoCache in
                let key = CacheLRU.Key(image: candidate.digest, model: fingerprint)
                if let cache = lru.get(key) { return cache }
                guard let kv = try r.record(image: candidate.digest, model: fingerprint) else {
                    throw try missingRecord(r, candidate.digest, collection: request.collection)
                }
                let cache = try model.engineCache(kv)
                lru.put(key, cache)
                return cache
            }
            return (candidates, caches)
        }
    }

    private func candidates(_ r: StoreReader, _ request: QueryRequest) throws -> [Candidate] {
        var seen = Set<Digest>()
        let asked = request.images.filter { seen.insert($0).inserted }
        func name(_ digest: Digest) throws -> String? { try r.image(digest)?.sourceNames.first }
        guard let collection = request.collection else {
            guard !asked.isEmpty else { throw QueryError.noImages(collection: nil) }
            return try asked.map { digest in
                guard try r.image(digest) != nil || r.hasRecord(image: digest, model: fingerprint) else { throw QueryError.unknownImage(digest) }
                return Candidate(digest: digest, ordinal: nil, name: try name(digest))
            }
        }
        guard try r.collection(named: collection) != nil else { throw QueryError.unknownCollection(collection) }
        var members = try r.members(of: collection)
        if !asked.isEmpty {
            let wanted = Set(asked)
            members = members.filter { wanted.contains($0.image) }
            let present = Set(members.map(\.image))
            for digest in asked where !present.contains(digest) {
                guard try r.image(digest) != nil else { throw QueryError.unknownImage(digest) }
                throw QueryError.notInCollection(image: digest, collection: collection)
            }
        }
        guard !members.isEmpty else { throw QueryError.noImages(collection: collection) }
        return try members.map { Candidate(digest: $0.image, ordinal: $0.ordinal, name: try name($0.image)) }
    }

    private func missingRecord(_ r: StoreReader, _ image: Digest, collection: String?) throws -> QueryError {
        let others = try r.models().map(\.fingerprint).filter { $0 != fingerprint && (try? r.hasRecord(image: image, model: $0)) == true }
        if others.isEmpty {
            guard try r.image(image) != nil else { return .unknownImage(image) }
            return .noRecord(image: image, model: fingerprint, collection: collection)
        }
        return .wrongModel(image: image, collection: collection, wanted: fingerprint, found: others)
    }

    // MARK: Planning

    struct Plan {
        /// Candidate indices in placement order.
        var order: [Int]
        /// Relevance of every candidate when ranked.
        var scores: [Float]?
        var description: String
    }

    func plan(_ question: String, caches: [VoCoCache], options: GenerationOptions) throws -> Plan {
        let count = caches.count
        func fits(_ n: Int) -> Bool { (try? model.checkQuestion(question, images: n, options: options)) != nil }
        let trained = model.settings.maxImages ?? count
        if count <= trained, fits(count) { return Plan(order: Array(0..<count), scores: nil, description: "all") }
        // The most images that fit: checkQuestion is monotone in the count.
        var (low, high) = (1, min(count, trained))
        while low < high {
            let middle = low + (high - low + 1) / 2
            if fits(middle) { low = middle } else { high = middle - 1 }
        }
        var limit = low
        guard let relevance, let (probe, target, rule) = relevance.probe(for: question) else {
            return Plan(order: Array(0..<limit), scores: nil, description: "first")
        }
        let scores: [Float], method: String
        if let head, let target, let byHead = try head.scores(target, caches: caches) {
            (scores, method) = (byHead, "head: \(target)")
        } else {
            let prompt = model.promptIds(for: probe)
            let logits = try model.engine.probeLogits(caches: caches, prompt: prompt, tokens: [relevance.yes, relevance.no], batch: probeBatch)
            (scores, method) = (logits.map { $0[0] - $0[1] }, "probe: \(probe)")
        }
        if let images = rule.images { limit = min(limit, images) }
        // Best first; equal scores keep collection order.
        let order = (0..<count).sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        return Plan(order: Array(order.prefix(limit)), scores: scores, description: method)
    }
}

/// Seconds between laps.
struct Stopwatch {
    private var last = DispatchTime.now().uptimeNanoseconds
    mutating func lap() -> Double {
        let now = DispatchTime.now().uptimeNanoseconds
        defer { last = now }
        return Double(now - last) / 1e9
    }
}
