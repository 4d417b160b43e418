import ArgumentParser
import Foundation
import VoCoCommands
import VoCoModel
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB

/// `voco-bench cached`: one question over 1 and over 4 images answered from stored caches (the
/// query service: store read + decode + answer, with a cold and with a warm LRU) against
/// compressing the images first (read, decode, preprocess, compression pass, then the same
/// answer), interleaved rounds, medians.
struct CachedBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cached",
        abstract: "Time to answer from stored caches vs compressing the images first (1 and 4 images)."
    )

    @Option(help: "Model directory (default: the bundled Models/voco-shapes).")
    var model: String?

    @Option(help: "Folder of sample images (default: Samples/ of the repository).")
    var images = "Samples"

    @Option(help: "Interleaved rounds.")
    var rounds = 20

    func validate() throws {
        guard (1...10_000).contains(rounds) else { throw ValidationError("--rounds must be in 1...10000 (got \(rounds))") }
    }

    func run() throws {
        let answering = try AnsweringModel(directory: model ?? DefaultModel.path())
        let files = try FileManager.default.contentsOfDirectory(atPath: images).filter { $0.hasSuffix(".png") || $0.hasSuffix(".jpg") }
            .sorted().prefix(4).map { (images as NSString).appendingPathComponent($0) }
        guard files.count == 4 else { throw CommandFailureMessage("\(images): needs 4 images, found \(files.count)") }
        let path = NSTemporaryDirectory() + "voco-cached-\(ProcessInfo.processInfo.processIdentifier)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try LMDBStore.open(path: path, options: StoreOptions(create: true))
        var digests: [Digest] = []
        let ingestor = try Ingestor(store: store, model: answering)
        _ = try ingestor.run(files.map { IngestSource(path: $0, collection: "bench") }) { batch in
            digests += batch.results.compactMap(\.outcome.digest)
        }
        let cold = try QueryService(store: store, model: answering, fingerprint: ingestor.fingerprint, cacheBytes: 0)
        let warm = try QueryService(store: store, model: answering, fingerprint: ingestor.fingerprint)
        let options = GenerationOptions(maxNewTokens: 8)
        let questions = [1: "Is there a red circle?", 4: "Which image has a red circle?"]
        var times: [String: [Double]] = [:]
        func time(_ key: String, _ body: () throws -> [Int]) rethrows -> [Int] {
            let start = DispatchTime.now().uptimeNanoseconds
            let tokens = try body()
            times[key, default: []].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            return tokens
        }
        for _ in 0..<rounds {
            for n in [1, 4] {
                let q = questions[n]!
                let request = QueryRequest(images: Array(digests.prefix(n)), question: q, generation: options)
                let a = try time("uncached/\(n)") {
                    try answering.answer(q, caches: try answering.compress(imagePaths: Array(files.prefix(n))).map(\.cache), options: options).tokens
                }
                let b = try time("stored, cold LRU/\(n)") { try cold.ask(request).tokens }
                let c = try time("stored, warm LRU/\(n)") { try warm.ask(request).tokens }
                guard a == b && b == c else { throw CommandFailureMessage("answers differ between the paths over \(n) image(s)") }
            }
        }
        func median(_ key: String) -> Double { let t = times[key]!.sorted(); return t[t.count / 2] }
        print("\(rounds) interleaved rounds, medians; the same answer tokens on every path")
        print("| path | 1 image ms | % of uncached | 4 images ms | % of uncached |")
        print("|---|---:|---:|---:|---:|")
        for path in ["uncached", "stored, cold LRU", "stored, warm LRU"] {
            let one = median("\(path)/1"), four = median("\(path)/4")
            print(String(format: "| %@ | %.2f | %.1f%% | %.2f | %.1f%% |", path, one * 1000, 100 * one / median("uncached/1"),
                         four * 1000, 100 * four / median("uncached/4")))
        }
        print("(no `full`-mode model is bundled, so the full-mode column of the issue is not measured here)")
    }
}
