import Foundation
import SafeTensors
import Testing
import VoCoModel
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB
import VoCoTestSupport

// MARK: - What ingest stores equals what the debug commands and `voco ask` compute

@Suite struct IngestPeerTests {
    /// `voco ingest` (the command, a child process) stores, for each image, exactly the values
    /// `voco debug preprocess-image` + `voco debug compress` write for that image alone, rounded
    /// to the model's dtype (F16; the store's codec is lossless); and answering from the stored
    /// records gives exactly `voco ask`'s answer.
    @Test func recordsEqualDebugCompressAndAnswersEqualVocoAsk() throws {
        let names = ["00003.png", "00024.png", "00001.jpg"]
        let folder = try sampleFolder(names)
        let work = TestPaths.scratch("peer")
        let store = (work as NSString).appendingPathComponent("store")
        let ingest = try ChildProcess.run(TestPaths.voco, ["ingest", folder, "--collection", "peer", "--store", store, "--batch", "2",
                                                           "--model", TestPaths.bundledModel, "--json"], logs: work)
        #expect(ingest.status == 0, "\(ingest.error)")
        let opened = try scratchStoreReopen(store)
        let model = try bundledModel.get()
        let descriptor = try #require(try opened.read { try $0.models() }.first)
        #expect(descriptor.dtype == "F16")

        for name in names {
            let image = "\(folder)/\(name)"
            let pixels = "\(work)/\(name).pixels.safetensors", caches = "\(work)/\(name).caches.safetensors"
            for arguments in [["debug", "preprocess-image", "--model", TestPaths.bundledModel, "-o", pixels, image],
                              ["debug", "compress", "--model", TestPaths.bundledModel, "--pixels", pixels, "--out", caches]] {
                let run = try ChildProcess.run(TestPaths.voco, arguments, logs: work)
                #expect(run.status == 0, "\(arguments[1]): \(run.error)")
            }
            let file = try SafeTensorsFile(path: caches)
            let keys = try file.tensor("voco_k").floats(), values = try file.tensor("voco_v").floats()
            let digest = try sha256(file: image)
            let kv = try #require(try opened.get(image: digest, model: descriptor.fingerprint))
            #expect(kv.keys.map(\.bitPattern) == keys.map { Float(Float16($0)).bitPattern }, "\(name): keys")
            #expect(kv.values.map(\.bitPattern) == values.map { Float(Float16($0)).bitPattern }, "\(name): values")
            #expect(kv.keysBeforeRoPE)
        }

        let question = "Which image has a blue circle?"
        let ask = try ChildProcess.run(TestPaths.voco, ["ask", "--model", TestPaths.bundledModel, "--json"]
            + names.flatMap { ["--image", "\(folder)/\($0)"] } + [question], logs: work)
        #expect(ask.status == 0, "\(ask.error)")
        let asked = try JSONSerialization.jsonObject(with: Data(ask.output.utf8)) as? [String: Any]
        let caches = try names.map { name in
            let digest = try sha256(file: "\(folder)/\(name)")
            let kv = try #require(try opened.get(image: digest, model: descriptor.fingerprint))
            return try model.engineCache(kv)
        }
        let answer = try model.answer(question, caches: caches)
        #expect(answer.text == asked?["answer"] as? String)
        #expect(answer.tokens == asked?["tokens"] as? [Int])
    }
}

/// The store a child process made, opened here.
func scratchStoreReopen(_ path: String) throws -> CacheStore {
    try LMDBStore.open(path: path, options: StoreOptions(readOnly: true))
}
