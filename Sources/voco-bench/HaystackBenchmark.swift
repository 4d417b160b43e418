import ArgumentParser
import Foundation
import VoCoCommands
import VoCoImage
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB

/// `voco-bench haystack --data out/haystack`: accuracy x collection size of the query service on
/// shapes haystacks (Tools/demo/haystack.py), the relevance planner against the collection-order
/// baseline in the same run, and the median time per question with a warm LRU.
struct HaystackBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "haystack",
        abstract: "Shapes haystacks: accuracy and time per question at each collection size, ranked planner vs first-images baseline."
    )

    @Option(help: "What Tools/demo/haystack.py wrote (images/, collections.jsonl, questions.jsonl).")
    var data: String

    @Option(help: "The store to fill and ask (LMDB directory; reused when it holds the collections already). Default: a temporary one.")
    var store: String?

    @Option(help: "Model directory (default: the bundled Models/voco-shapes).")
    var model: String?

    @Option(help: "Questions of each kind per size at most (default all).")
    var limit: Int?

    @Option(help: "Rank by this relevance.json instead of the model directory's.")
    var relevance: String?

    @Flag(help: "Skip the baseline (first images in collection order).")
    var noBaseline = false

    @Flag(help: "Rank by relevance.json's probes even where the model has a relevance head.")
    var noHead = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be >= 1 (got \(limit))") }
    }

    struct Collection: Decodable { let name: String; let n: Int; let images: [String] }
    struct Question: Decodable {
        let collection: String; let n: Int; let kind: String; let question: String; let answer: String
        let needle: String?; let needle_objects: Int?
    }

    func run() throws {
        let collections = try Self.lines(Collection.self, (data as NSString).appendingPathComponent("collections.jsonl"))
        var questions = try Self.lines(Question.self, (data as NSString).appendingPathComponent("questions.jsonl"))
        if let limit {
            var seen: [String: Int] = [:]
            questions = questions.filter { q in
                let key = "\(q.n)/\(q.kind)"
                seen[key, default: 0] += 1
                return seen[key]! <= limit
            }
        }
        let answering = try AnsweringModel(directory: model ?? DefaultModel.path())
        let path = store ?? NSTemporaryDirectory() + "voco-haystack-\(ProcessInfo.processInfo.processIdentifier)"
        let cacheStore = try LMDBStore.open(path: path, options: StoreOptions(create: true))
        defer { if store == nil { try? FileManager.default.removeItem(atPath: path) } }

        // Fill: every image once (Ingestor), then the collections as lists of digests.
        let files = Set(collections.flatMap(\.images)).sorted()
        var digestOf: [String: Digest] = [:]
        let ingestStart = Date()
        let ingestor = try Ingestor(store: cacheStore, model: answering)
        _ = try ingestor.run(files.map { IngestSource(path: (data as NSString).appendingPathComponent($0), name: $0, collection: "haystack-all") }) { batch in
            for result in batch.results {
                guard let digest = result.outcome.digest else { throw CommandFailureMessage("\(result.source.path): \(result.outcome)") }
                digestOf[result.source.name] = digest
            }
        }
        let ingestSeconds = Date().timeIntervalSince(ingestStart)
        let needed = questions.map(\.collection)
        let wanted = Set(needed)
        let fillStart = Date()
        try cacheStore.write { w in
            for c in collections where wanted.contains(c.name) {
                if try w.collection(named: c.name) == nil { try w.append(c.images.map { digestOf[$0]! }, to: c.name) }
            }
        }
        print("store \(path): \(files.count) images ingested in \(String(format: "%.1f", ingestSeconds)) s, \(wanted.count) collections in \(String(format: "%.1f", Date().timeIntervalSince(fillStart))) s")

        let service = try QueryService(store: cacheStore, model: answering, fingerprint: ingestor.fingerprint)
        if let relevance {
            guard let json = FileManager.default.contents(atPath: relevance) else { throw CommandFailureMessage("\(relevance): cannot read") }
            service.rules = try RelevanceRules(json: json, path: relevance, tokenizer: answering.tokenizer)
        }
        if noHead { service.head = nil }
        print("ranking: \(service.head == nil ? "relevance.json probes" : "relevance head (\(service.head!.targets.count) targets), probes where it lacks the target")")
        let baseline = try QueryService(store: cacheStore, model: answering, fingerprint: ingestor.fingerprint)
        baseline.usesRelevance = false
        // Warm the LRU: every image once.
        _ = try service.ask(QueryRequest(collection: "haystack-all", question: "Which image has a red circle?"))
        _ = try baseline.ask(QueryRequest(collection: "haystack-all", question: "Which image has a red circle?"))

        struct Cell { var right = 0; var total = 0; var times: [Double] = [] }
        var cells: [String: Cell] = [:]  // "planner/n/kind"
        var byObjects: [String: Cell] = [:]  // "planner/kind/objects" over the largest n
        let sizes = Array(Set(questions.map(\.n))).sorted()
        for q in questions {
            for (planner, svc) in [("ranked", service)] + (noBaseline ? [] : [("baseline", baseline)]) {
                let start = DispatchTime.now().uptimeNanoseconds
                let answer = try svc.ask(QueryRequest(collection: q.collection, question: q.question,
                                                      generation: .init(maxNewTokens: 8)))
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                let right: Bool
                if q.kind == "which" {
                    right = answer.references.count == 1 && answer.references[0].digest == digestOf[q.answer]?.hex
                    if answer.ranked {
                        cells["\(planner)/\(q.n)/first", default: Cell()].total += 1
                        cells["\(planner)/\(q.n)/first", default: Cell()].right += answer.used.first?.digest == digestOf[q.answer]?.hex ? 1 : 0
                    }
                } else {
                    right = answer.answer == q.answer
                }
                for key in ["\(planner)/\(q.n)/\(q.kind)", "\(planner)/\(q.n)/all"] {
                    cells[key, default: Cell()].right += right ? 1 : 0
                    cells[key, default: Cell()].total += 1
                    cells[key, default: Cell()].times.append(seconds)
                }
                if q.n == sizes.last, let objects = q.needle_objects {
                    byObjects["\(planner)/\(q.kind)/\(objects)", default: Cell()].right += right ? 1 : 0
                    byObjects["\(planner)/\(q.kind)/\(objects)", default: Cell()].total += 1
                }
            }
        }
        func pct(_ c: Cell?) -> String { guard let c, c.total > 0 else { return "-" }; return String(format: "%.1f", 100 * Double(c.right) / Double(c.total)) }
        func median(_ c: Cell?) -> String {
            guard let t = c?.times.sorted(), !t.isEmpty else { return "-" }
            return String(format: "%.1f", 1000 * t[t.count / 2])
        }
        print("")
        print("| planner | N | which % | any % | needle ranked first % | questions | median ms/question |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for planner in ["ranked"] + (noBaseline ? [] : ["baseline"]) {
            for n in sizes {
                let which = cells["\(planner)/\(n)/which"], any = cells["\(planner)/\(n)/any"], all = cells["\(planner)/\(n)/all"]
                print("| \(planner) | \(n) | \(pct(which)) | \(pct(any)) | \(pct(cells["\(planner)/\(n)/first"])) | \(all?.total ?? 0) | \(median(all)) |")
            }
        }
        if let largest = sizes.last {
            print("")
            print("At N = \(largest), by the needle image's object count (questions about the needle only):")
            print("| planner | kind | 1 | 2 | 3 | 4 |")
            print("|---|---|---:|---:|---:|---:|")
            for planner in ["ranked"] + (noBaseline ? [] : ["baseline"]) {
                for kind in ["which", "any"] {
                    let row = (1...4).map { o -> String in
                        let c = byObjects["\(planner)/\(kind)/\(o)"]
                        return "\(pct(c)) (\(c?.total ?? 0))"
                    }
                    print("| \(planner) | \(kind) | " + row.joined(separator: " | ") + " |")
                }
            }
        }
        let stats = service.cacheStatistics
        print("\nLRU (ranked service): \(stats.hits) hits, \(stats.misses) misses, \(stats.evictions) evictions, \(stats.bytes) bytes of \(stats.capacity)")
    }

    static func lines<T: Decodable>(_ type: T.Type, _ path: String) throws -> [T] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CommandFailureMessage("\(path): cannot read") }
        return try text.split(separator: "\n").enumerated().map { i, line in
            do { return try JSONDecoder().decode(T.self, from: Data(line.utf8)) } catch {
                throw CommandFailureMessage("\(path):\(i + 1): \(error)")
            }
        }
    }
}

struct CommandFailureMessage: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
