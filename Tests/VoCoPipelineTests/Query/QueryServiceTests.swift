import Foundation
import Testing
import VoCoModel
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB
import VoCoTestSupport

// MARK: - The query service over a store filled by the Ingestor

/// The 40 sample images ingested once into an LMDB store (lossless default codec), collection "samples".
let sampleStore = Result { () -> (store: CacheStore, digests: [String: Digest]) in
    let store = try scratchStore("query")
    let names = try sampleImageNames(40)
    var digests: [String: Digest] = [:]
    let ingestor = try bundledIngestor(store)
    _ = try ingestor.run(names.map { IngestSource(path: (TestPaths.samples as NSString).appendingPathComponent($0), name: $0, collection: "samples") }) { batch in
        for r in batch.results { digests[r.source.name] = r.outcome.digest }
    }
    return (store, digests)
}

@Suite(.serialized) struct QueryServiceTests {
    func service(cacheBytes: Int = 64 << 20) throws -> QueryService {
        try QueryService(store: try sampleStore.get().store, model: try bundledModel.get(), cacheBytes: cacheBytes)
    }

    func digest(_ name: String) throws -> Digest { try #require(try sampleStore.get().digests[name]) }

    /// Answers from the stored records equal answers from freshly compressed images, token for
    /// token, on every sample question (the store's default codec is lossless).
    @Test func storedAnswersEqualFreshOnes() throws {
        let model = try bundledModel.get()
        let split = try EvaluationSplit(path: samplesPath)
        let service = try service()
        #expect(try sampleStore.get().store.codec.codec == .shuffleZstd)
        var compared = 0
        for q in split.questions {
            let fresh = try model.answer(q.question, caches: try model.compress(imagePaths: q.images.map(split.imagePath)).map(\.cache),
                                         options: GenerationOptions(maxNewTokens: 8))
            let stored = try service.ask(QueryRequest(images: try q.images.map { try digest(($0 as NSString).lastPathComponent) },
                                                      question: q.question, generation: GenerationOptions(maxNewTokens: 8)))
            #expect(stored.tokens == fresh.tokens, "\(q.question)")
            #expect(stored.answer == fresh.text)
            #expect(!stored.ranked && stored.used.count == q.images.count)
            compared += 1
        }
        #expect(compared == 64)
    }

    /// With each lossy codec, how many of the 64 sample answers differ from the fresh ones (printed;
    /// recorded in docs/query.md).
    @Test(arguments: ["int8", "q4", "hq"])
    func lossyCodecsChangeFewAnswers(_ codec: String) throws {
        let model = try bundledModel.get()
        let split = try EvaluationSplit(path: samplesPath)
        let store = try LMDBStore.open(path: (TestPaths.scratch("query-\(codec)") as NSString).appendingPathComponent("store"),
                                       options: StoreOptions(create: true, codec: try CodecSettings(parsing: codec)))
        let names = try sampleImageNames(40)
        _ = try bundledIngestor(store).run(names.map { IngestSource(path: (TestPaths.samples as NSString).appendingPathComponent($0), name: $0, collection: "samples") }) { _ in }
        let service = try QueryService(store: store, model: model)
        var differ = 0, right = 0
        for q in split.questions {
            let fresh = try model.answer(q.question, caches: try model.compress(imagePaths: q.images.map(split.imagePath)).map(\.cache),
                                         options: GenerationOptions(maxNewTokens: 8))
            let stored = try service.ask(QueryRequest(images: try q.images.map { try digest(($0 as NSString).lastPathComponent) },
                                                      question: q.question, generation: GenerationOptions(maxNewTokens: 8)))
            if stored.tokens != fresh.tokens { differ += 1 }
            if stored.answer == q.answer { right += 1 }
        }
        print("codec \(codec): \(differ) of 64 sample answers differ from freshly compressed images; \(right) of 64 right")
        #expect(differ <= 64)
    }

    @Test func recordsOfAnotherModelAreRefusedByName() throws {
        let real = try ModelFingerprint.compute(directory: bundledModelPath).fingerprint
        let other = Digest.sha256(Array("another model".utf8))
        let service = try QueryService(store: try sampleStore.get().store, model: try bundledModel.get(), fingerprint: other)
        let image = try digest("00003.png")
        #expect(throws: QueryError.wrongModel(image: image, collection: "samples", wanted: other, found: [real])) {
            try service.ask(QueryRequest(collection: "samples", images: [image], question: "Is there a red circle?"))
        }
        let text = QueryError.wrongModel(image: image, collection: "samples", wanted: other, found: [real]).description
        #expect(text.contains(image.hex) && text.contains("samples") && text.contains(other.hex) && text.contains(real.hex))
    }

    @Test func unknownNamesAreErrors() throws {
        let service = try service()
        let stranger = Digest.sha256(Array("no such image".utf8))
        #expect(throws: QueryError.unknownCollection("nope")) { try service.ask(QueryRequest(collection: "nope", question: "Q?")) }
        #expect(throws: QueryError.unknownImage(stranger)) { try service.ask(QueryRequest(images: [stranger], question: "Q?")) }
        #expect(throws: QueryError.unknownImage(stranger)) {
            try service.ask(QueryRequest(collection: "samples", images: [stranger], question: "Q?"))
        }
        #expect(throws: QueryError.noImages) { try service.ask(QueryRequest(question: "Q?")) }
        #expect(throws: QueryError.emptyQuestion) { try service.ask(QueryRequest(collection: "samples", question: "  ")) }
        // An image entry without a record of this model.
        let store = try sampleStore.get().store
        let bare = Digest.sha256(Array("an image never compressed".utf8))
        try store.write { w in
            try w.putImage(bare, ImageInfo(byteCount: 1, format: "png", width: 1, height: 1, sourceNames: ["bare.png"]))
            try w.append([bare], to: "bare")
        }
        #expect(throws: QueryError.noRecord(image: bare, model: service.fingerprint, collection: "bare")) {
            try service.ask(QueryRequest(collection: "bare", question: "Q?"))
        }
        #expect(throws: QueryError.notInCollection(image: try digest("00003.png"), collection: "bare")) {
            try service.ask(QueryRequest(collection: "bare", images: [try digest("00003.png")], question: "Q?"))
        }
    }

    @Test func fitsAllInCollectionOrderElseRanks() throws {
        let store = try sampleStore.get().store
        let names = try sampleImageNames(7)
        let members = try names.map(digest)
        try store.write { w in
            if try w.collection(named: "three") == nil { try w.append(Array(members.prefix(3)), to: "three") }
            if try w.collection(named: "seven") == nil { try w.append(members, to: "seven") }
        }
        let service = try service()
        // Three images fit: all, in collection order, no ranking.
        let small = try service.ask(QueryRequest(collection: "three", question: "Which image has a red circle?"))
        #expect(!small.ranked && small.candidates == 3)
        #expect(small.used.map(\.digest) == members.prefix(3).map(\.hex))
        #expect(small.used.map(\.ordinal) == [0, 1, 2] && small.used.allSatisfy { $0.relevance == nil })
        #expect(small.used.map(\.name) == names.prefix(3).map { Optional($0) })
        // Seven do not (voco.max_images is 4): ranked, the best first, as many as relevance.json places.
        let large = try service.ask(QueryRequest(collection: "seven", question: "Which image has a red circle?"))
        #expect(large.ranked && large.candidates == 7 && large.used.count == 2)
        let scores = large.used.compactMap(\.relevance)
        #expect(scores.count == 2 && scores[0] >= scores[1])
        // A question no rule matches: the first images in collection order, up to the maximum.
        let other = try service.ask(QueryRequest(collection: "seven", question: "How many objects are in image 1?"))
        #expect(!other.ranked && other.used.map(\.digest) == members.prefix(4).map(\.hex))
        // Narrowed by digests: in collection order whatever the order given.
        let narrowed = try service.ask(QueryRequest(collection: "seven", images: [members[5], members[1]], question: "Which image has a red circle?"))
        #expect(narrowed.used.map(\.digest) == [members[1].hex, members[5].hex] && narrowed.used.map(\.ordinal) == [1, 5])
        #expect(large.timings.plan > 0 && large.timings.load >= 0 && large.timings.prefill > 0)
    }

    /// The batched probe gives each cache what a query session over that cache alone gives.
    @Test func probePassMatchesOneQueryPerImage() throws {
        let model = try bundledModel.get()
        let caches = try model.compress(imagePaths: try sampleImageNames(6).map { (TestPaths.samples as NSString).appendingPathComponent($0) }).map(\.cache)
        let prompt = model.promptIds(for: "Is there a red circle?")
        let yes = try #require(model.tokenizer.tokenToId("▁yes")), no = try #require(model.tokenizer.tokenToId("▁no"))
        let batched = try model.engine.probeLogits(caches: caches, prompt: prompt, tokens: [yes, no], batch: 4)
        for (i, cache) in caches.enumerated() {
            let all = try model.engine.queryLogits(caches: [cache], tokens: prompt)
            let vocab = model.engine.text.vocabSize, last = Array(all.suffix(vocab))
            #expect(abs(batched[i][0] - last[yes]) < 1e-3 && abs(batched[i][1] - last[no]) < 1e-3)
            let top = last.max()!, lse = top + Float(log(last.reduce(0.0) { $0 + exp(Double($1 - top)) }))
            #expect(abs(batched[i][2] - lse) < 1e-3)
        }
    }

    @Test func referencesResolveToPlacedImages() {
        let used = [UsedImage(number: 1, digest: "aa", name: "a.png"), UsedImage(number: 2, digest: "bb", name: "b.png")]
        let refs = QueryService.references(in: "image 2, not Image 1 or image 3 or image 99999999999999999999", used: used)
        #expect(refs == [ImageReference(text: "image 2", number: 2, digest: "bb", name: "b.png"),
                         ImageReference(text: "Image 1", number: 1, digest: "aa", name: "a.png"),
                         ImageReference(text: "image 3", number: 3, digest: nil, name: nil)])
        #expect(QueryService.references(in: "image 0 and image 1", used: []).map(\.digest) == [nil, nil])
    }

    @Test func relevanceRulesRefuseBadFiles() throws {
        let tokenizer = try bundledModel.get().tokenizer
        func parse(_ json: String) throws -> RelevanceRules { try RelevanceRules(json: Data(json.utf8), path: "r.json", tokenizer: tokenizer) }
        #expect(throws: RelevanceError.self) { try parse("[]") }
        #expect(throws: RelevanceError.self) { try parse(#"{"format": 2, "yes_token": "▁yes", "no_token": "▁no", "rules": []}"#) }
        #expect(throws: RelevanceError.self) { try parse(#"{"format": 1, "yes_token": "nope", "no_token": "▁no", "rules": []}"#) }
        #expect(throws: RelevanceError.self) { try parse(#"{"format": 1, "yes_token": "▁yes", "no_token": "▁no", "rules": [{"pattern": "(", "probes": ["x"]}]}"#) }
        #expect(throws: RelevanceError.self) { try parse(#"{"format": 1, "yes_token": "▁yes", "no_token": "▁no", "rules": [{"pattern": "x", "probes": []}]}"#) }
        #expect(throws: RelevanceError.self) { try parse(#"{"format": 1, "yes_token": "▁yes", "no_token": "▁no", "batch": 0, "rules": []}"#) }
        let rules = try #require(try RelevanceRules.load(directory: bundledModelPath, tokenizer: tokenizer))
        let match = try #require(rules.match("Which image has a red circle?"))
        #expect(match.probes.first?.question == "Is there a red circle?" && match.place == 2)
        #expect(rules.match("Describe the image.") == nil)
    }
}

@Suite struct DecodedCacheLRUTests {
    func cache(_ rows: Int) throws -> VoCoCache {
        try VoCoCache(mode: .voco, layers: 1, rows: rows, width: 4, firstPosition: 0, keys: .init(repeating: 1, count: rows * 4),
                      values: .init(repeating: 2, count: rows * 4))
    }

    func key(_ i: Int) -> DecodedCacheLRU.Key {
        DecodedCacheLRU.Key(model: Digest.sha256(Array("m".utf8)), image: Digest.sha256(Array("\(i)".utf8)))
    }

    @Test func boundedByBytesEvictingTheLeastRecentlyUsed() throws {
        let one = DecodedCacheLRU.bytes(of: try cache(1))  // 32 bytes
        #expect(one == 32)
        let lru = DecodedCacheLRU(capacity: 3 * one)
        for i in 0..<3 { lru.put(key(i), try cache(1)) }
        #expect(lru.get(key(0)) != nil)  // 0 is now the newest; 1 the oldest
        lru.put(key(3), try cache(1))
        #expect(!lru.contains(key(1)) && lru.contains(key(0)) && lru.contains(key(2)) && lru.contains(key(3)))
        lru.put(key(4), try cache(2))  // two entries' worth: evicts 2 and 0
        #expect(!lru.contains(key(2)) && !lru.contains(key(0)) && lru.contains(key(3)) && lru.contains(key(4)))
        let s = lru.statistics
        #expect(s.bytes == 3 * one && s.bytes <= s.capacity && s.evictions == 3 && s.hits == 1 && s.entries == 2)
        #expect(lru.get(key(1)) == nil && lru.statistics.misses == 1)
        lru.put(key(5), try cache(4))  // larger than the capacity: not kept, nothing evicted
        #expect(!lru.contains(key(5)) && lru.statistics.entries == 2)
        #expect(DecodedCacheLRU(capacity: -5).statistics.capacity == 0)
    }

    @Test func manyThreadsAtOnce() throws {
        let lru = DecodedCacheLRU(capacity: 10 * 32)
        let c = try cache(1)
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<500 { lru.put(key((t * 7 + i) % 40), c); _ = lru.get(key(i % 40)) }
        }
        let s = lru.statistics
        #expect(s.bytes <= s.capacity && s.entries <= 10 && s.hits + s.misses == 4000)
    }
}
