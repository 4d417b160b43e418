import Foundation
import VoCoModel
import VoCoStore

// MARK: - Questions over stored caches

/// Answers questions over stored collections or chosen images from their stored caches: no image
/// is read or compressed. One read transaction per question loads the members and records (a
/// consistent snapshot while ingest writes); only records of this model's fingerprint are used;
/// decoded caches stay in a byte-bounded LRU. When every candidate fits the context and the
/// model's trained maximum (`voco.max_images`), all are placed in collection order; otherwise
/// the planner ranks them (relevance.json's probes over each cache alone) and places the best.
///
/// Thread-safe: many threads may call `ask` at once (the engine runs one pass at a time).
public final class QueryService: @unchecked Sendable {
    public let store: CacheStore
    public let model: AnsweringModel
    public let fingerprint: Digest
    /// The model directory's ranking rules (relevance.json), nil when it has none.
    public var rules: RelevanceRules?
    /// The model's trained relevance head (relevance/head.safetensors), nil when it has none;
    /// settable so that a benchmark can compare with the probes alone.
    public var head: RelevanceHead?
    /// What the service could not use and said so (a relevance head made for another model).
    public private(set) var warnings: [String] = []
    let lru: DecodedCacheLRU
    /// When false the planner never ranks: a collection larger than what fits is answered over
    /// its first images in collection order (the baseline the haystack benchmark measures).
    public var usesRelevance = true

    public init(store: CacheStore, model: AnsweringModel, fingerprint: Digest, cacheBytes: Int = 256 << 20) throws {
        self.store = store
        self.model = model
        self.fingerprint = fingerprint
        rules = try RelevanceRules.load(directory: model.directory, tokenizer: model.tokenizer)
        do {
            head = try RelevanceHead.load(directory: model.directory, fingerprint: fingerprint)
        } catch let error as RelevanceError where error.madeFor != nil {
            // A head made for other weights (a copied or retrained model): the probes rank instead.
            head = nil
            warnings.append("\(error); ranking by relevance.json's probes instead")
        }
        lru = DecodedCacheLRU(capacity: cacheBytes)
    }

    public convenience init(store: CacheStore, model: AnsweringModel, cacheBytes: Int = 256 << 20) throws {
        let fingerprint = try ModelFingerprint.compute(directory: model.directory, store: store).fingerprint
        try self.init(store: store, model: model, fingerprint: fingerprint, cacheBytes: cacheBytes)
    }

    public var cacheStatistics: CacheStatistics { lru.statistics }

    // MARK: Asking

    public func ask(_ request: QueryRequest, onText: ((String) -> Void)? = nil) throws -> QueryAnswer {
        let question = request.question.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !question.isEmpty else { throw QueryError.emptyQuestion }
        var timings = QueryTimings()
        var clock = Stopwatch()
        let candidates = try load(request)
        timings.load = clock.lap()

        let plan = try self.plan(question: question, candidates: candidates, options: request.generation)
        timings.plan = clock.lap()

        let caches = plan.placed.map { candidates[$0.index].cache }
        var firstToken: Double?
        let answer: Answer
        do {
            answer = try model.answer(plan.question, caches: caches, options: request.generation, onText: onText,
                                      onFirstToken: { firstToken = clock.elapsed })
        } catch let error as PipelineError {
            throw Self.queryError(error)
        }
        let generation = clock.lap()
        timings.prefill = firstToken ?? generation
        timings.decode = max(0, generation - timings.prefill)

        let used = plan.placed.enumerated().map { i, p in
            let c = candidates[p.index]
            return UsedImage(number: i + 1, digest: c.image.hex, ordinal: c.ordinal, name: c.name, relevance: p.relevance)
        }
        return QueryAnswer(answer: answer.text, tokens: answer.tokens, stop: answer.stop, used: used,
                           references: Self.references(in: answer.text, used: used), candidates: candidates.count,
                           ranked: plan.ranked, plan: plan.method, model: fingerprint, timings: timings)
    }

    // MARK: Loading (one read transaction)

    struct Candidate {
        let image: Digest
        let ordinal: UInt64?
        let name: String?
        let cache: VoCoCache
    }

    func load(_ request: QueryRequest) throws -> [Candidate] {
        try store.read { r in
            var chosen: [(image: Digest, ordinal: UInt64?)] = []
            if let name = request.collection {
                guard try r.collection(named: name) != nil else { throw QueryError.unknownCollection(name) }
                if request.images.isEmpty {
                    chosen = try r.members(of: name).map { ($0.image, $0.ordinal) }
                } else {
                    var seen = Set<Digest>()
                    for image in request.images where seen.insert(image).inserted {
                        guard let ordinal = try r.ordinal(of: image, in: name) else {
                            if try r.image(image) == nil && !(try hasAnyRecord(r, image)) { throw QueryError.unknownImage(image) }
                            throw QueryError.notInCollection(image: image, collection: name)
                        }
                        chosen.append((image, ordinal))
                    }
                    chosen.sort { $0.ordinal! < $1.ordinal! }
                }
            } else {
                var seen = Set<Digest>()
                chosen = request.images.filter { seen.insert($0).inserted }.map { ($0, nil) }
            }
            guard !chosen.isEmpty else { throw QueryError.noImages }
            return try chosen.map { image, ordinal in
                let name = try r.image(image)?.sourceNames.first
                let key = DecodedCacheLRU.Key(model: fingerprint, image: image)
                if let cache = lru.get(key) { return Candidate(image: image, ordinal: ordinal, name: name, cache: cache) }
                guard let kv = try record(r, image) else {
                    guard try r.image(image) != nil || hasAnyRecord(r, image) else { throw QueryError.unknownImage(image) }
                    let others = try r.models().map(\.fingerprint).filter { $0 != fingerprint && (try? hasRecord(r, image, model: $0)) == true }
                    if others.isEmpty { throw QueryError.noRecord(image: image, model: fingerprint, collection: request.collection) }
                    throw QueryError.wrongModel(image: image, collection: request.collection, wanted: fingerprint, found: others.sorted())
                }
                let cache = try model.engineCache(kv)
                lru.put(key, cache)
                return Candidate(image: image, ordinal: ordinal, name: name, cache: cache)
            }
        }
    }

    /// This model's record of `image`: the store's codec first, then any other.
    private func record(_ r: StoreReader, _ image: Digest) throws -> KVTensors? {
        if let kv = try r.record(image: image, model: fingerprint) { return kv }
        for codec in RecordCodec.allCases where codec != store.codec.codec {
            if let found = try r.record(RecordKey(model: fingerprint, image: image, codec: codec)) { return found.kv }
        }
        return nil
    }

    private func hasRecord(_ r: StoreReader, _ image: Digest, model: Digest) throws -> Bool {
        try RecordCodec.allCases.contains { try r.readTransaction.hasRecord(RecordKey(model: model, image: image, codec: $0)) }
    }

    private func hasAnyRecord(_ r: StoreReader, _ image: Digest) throws -> Bool {
        try r.models().contains { try hasRecord(r, image, model: $0.fingerprint) }
    }

    // MARK: Planning

    struct Placement: Equatable {
        let index: Int
        let relevance: Double?
    }

    struct Plan {
        var placed: [Placement]
        var ranked: Bool
        /// What the model is asked over the placed images.
        var question: String
        /// QueryAnswer.plan.
        var method: String
    }

    /// The most images of `candidates`' rows that fit the context with the question, and the
    /// model's trained maximum.
    func fitting(question: String, count: Int, options: GenerationOptions) throws -> Int {
        var n = min(count, model.settings.maxImages ?? count)
        while n > 0 {
            do {
                try model.checkQuestion(question, images: n, options: options)
                return n
            } catch PipelineError.contextTooSmall {
                n -= 1
            }
        }
        do {
            try model.checkQuestion(question, images: 1, options: options)
        } catch let error as PipelineError {
            throw Self.queryError(error)
        }
        return 1
    }

    func plan(question: String, candidates: [Candidate], options: GenerationOptions) throws -> Plan {
        let fit = try fitting(question: question, count: candidates.count, options: options)
        if fit >= candidates.count {
            return Plan(placed: candidates.indices.map { Placement(index: $0, relevance: nil) }, ranked: false, question: question, method: "all")
        }
        guard usesRelevance, let rules, let match = rules.match(question) else {
            // No rule for this question: the first images in collection order (documented fallback).
            return Plan(placed: (0..<fit).map { Placement(index: $0, relevance: nil) }, ranked: false, question: question, method: "first")
        }
        let scores: [Double], method: String
        if let head, let target = match.target, let byHead = try head.scores(target, caches: candidates.map(\.cache)) {
            (scores, method) = (byHead.map(Double.init), "head: \(target.lowercased())")
        } else {
            scores = try relevance(probes: match.probes, caches: candidates.map(\.cache), rules: rules)
            method = "probes: " + match.probes.map(\.question).joined(separator: " | ")
        }
        let order = candidates.indices.sorted { a, b in scores[a] != scores[b] ? scores[a] > scores[b] : a < b }
        let asked = match.ask ?? question
        let keep = min(match.place ?? fit, try fitting(question: asked, count: candidates.count, options: options))
        return Plan(placed: order.prefix(keep).map { Placement(index: $0, relevance: scores[$0]) }, ranked: true, question: asked, method: method)
    }

    /// Each cache's relevance: the sum of its probes' scores (log-odds or log-probabilities,
    /// RelevanceRules.Probe), each probe asked of every cache alone in batched passes.
    func relevance(probes: [RelevanceRules.Probe], caches: [VoCoCache], rules: RelevanceRules) throws -> [Double] {
        var total = [Double](repeating: 0, count: caches.count)
        for probe in probes {
            let prompt = model.promptIds(for: probe.question)
            let answer = try probe.answer.map { try answerToken($0, after: prompt, probe: probe.question) } ?? rules.yesToken
            let against = try probe.answer == nil ? rules.noToken : probe.against.map { try answerToken($0, after: prompt, probe: probe.question) }
            let logits = try model.engine.probeLogits(caches: caches, prompt: prompt, tokens: [answer] + (against.map { [$0] } ?? []),
                                                      batch: rules.batch)
            for (i, row) in logits.enumerated() {
                total[i] += Double(row[0] - (against == nil ? row[row.count - 1] : row[1]))
            }
        }
        return total
    }

    /// The first token the model writes for `answer` after `prompt`.
    func answerToken(_ answer: String, after prompt: [Int], probe: String) throws -> Int {
        let full = model.tokenizer.encode(model.settings.prompt(for: probe) + " " + answer, addSpecialTokens: false)
        guard full.count > prompt.count, Array(full.prefix(prompt.count)) == prompt else {
            throw RelevanceError(path: rules?.path ?? RelevanceRules.fileName, reason: "the answer \"\(answer)\" of probe \"\(probe)\" does not tokenize after its prompt")
        }
        return full[prompt.count]
    }

    // MARK: References

    /// Compiled once (a pattern compiles in tens of microseconds; matching is thread-safe).
    private static let referencePattern = try? NSRegularExpression(pattern: "\\bimage\\s+([0-9]+)\\b", options: [.caseInsensitive])

    /// "image N" mentions in `answer`, resolved to the placed images (digest nil when N was not placed).
    public static func references(in answer: String, used: [UsedImage]) -> [ImageReference] {
        guard let regex = referencePattern else { return [] }
        let ns = answer as NSString
        return regex.matches(in: answer, range: NSRange(location: 0, length: ns.length)).compactMap { m in
            guard let number = Int(ns.substring(with: m.range(at: 1))) else { return nil }
            let image = (1...max(1, used.count)).contains(number) && number <= used.count ? used[number - 1] : nil
            return ImageReference(text: ns.substring(with: m.range), number: number, digest: image?.digest, name: image?.name)
        }
    }

    static func queryError(_ error: PipelineError) -> Error {
        switch error {
        case .emptyQuestion: return QueryError.emptyQuestion
        case .contextTooSmall: return QueryError.doesNotFit(error.description)
        default: return error
        }
    }
}

/// Wall-clock laps.
struct Stopwatch {
    private var start = DispatchTime.now().uptimeNanoseconds
    /// Seconds since the last lap.
    var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
    mutating func lap() -> Double {
        let now = DispatchTime.now().uptimeNanoseconds
        defer { start = now }
        return Double(now - start) / 1e9
    }
}
