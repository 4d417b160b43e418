import Foundation
import SafeTensors
import Testing
@testable import VoCoStore
@testable import VoCoStoreLMDB

/// `voco inspect ...` run as a user runs it: the built executable, its output and exit status.
@Suite struct InspectCommandTests {
    /// A store with 12 synthetic records in collection "synthetic" (F16, 2 layers, 2x8, k = 1).
    private func filledStore() throws -> (path: String, model: ModelDescriptor) {
        let path = temporaryDirectory()
        let fill = try voco("debug", "store-fill", "--store", path, "--create", "--records", "12", "--batch", "5")
        #expect(fill.status == 0, "\(fill.error)")
        return (path, SyntheticKV.model(layers: 2, kvHeads: 2, headDim: 8, tokensPerImage: 1, dtype: .f16))
    }

    private func json(_ result: ProcessResult) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(result.output.utf8))
    }

    @Test func statsAndListReportWhatIsStored() throws {
        let (path, _) = try filledStore()
        let stats = try #require(try json(voco("inspect", "stats", "--store", path, "--json")) as? [String: Any])
        #expect(stats["records"] as? Int == 12 && stats["images"] as? Int == 12 && stats["collections"] as? Int == 1)
        let perCodec = try #require(stats["perCodec"] as? [[String: Any]])
        #expect(perCodec.first?["codec"] as? String == "shuffle-zstd" && perCodec.first?["rawBytes"] as? Int == 12 * 2 * 2 * 16 * 2)
        #expect(try voco("inspect", "stats", "--store", path).output.contains("shuffle-zstd"))

        let page = try #require(try json(voco("inspect", "ls", "synthetic", "--store", path, "--offset", "10", "--limit", "5", "--json")) as? [String: Any])
        let members = try #require(page["members"] as? [[String: Any]])
        #expect(page["total"] as? Int == 12 && members.map { $0["ordinal"] as? Int } == [10, 11])
        #expect(members.first?["image"] as? String == SyntheticKV.imageDigest(10).hex)
        #expect((members.first?["models"] as? [String])?.count == 1)
        let text = try voco("inspect", "ls", "synthetic", "--store", path, "--limit", "5").output
        #expect(text.contains("images 1-5 of 12") && text.contains("--offset 5"))
        #expect(try voco("inspect", "ls", "--store", path).output.contains("synthetic  12 images"))
    }

    @Test func showPrintsTheHeaderAndLayerStatistics() throws {
        let (path, model) = try filledStore()
        let image = SyntheticKV.imageDigest(3)
        let shown = try #require(try json(voco("inspect", "show", String(image.hex.prefix(10)), "--store", path, "--json")) as? [String: Any])
        let header = try #require(shown["header"] as? [String: Any])
        #expect(header["image"] as? String == image.hex && header["model"] as? String == model.fingerprint.hex)
        #expect(header["codec"] as? String == "shuffle-zstd" && header["dtype"] as? String == "F16" && header["layers"] as? Int == 2)
        let layers = try #require(shown["layers"] as? [[String: Any]])
        let expected = try #require(try LMDBStore.open(path: path, options: StoreOptions(readOnly: true)).get(image: image, model: model.fingerprint)).layerStatistics()
        #expect(layers.count == 2)
        #expect(((layers[1]["value"] as? [String: Any])?["max"] as? Double).map(Float.init) == expected[1].value.max)
        let text = try voco("inspect", "show", image.hex, "--store", path).output
        #expect(text.contains("before RoPE") && text.contains("K mean"))

        let missing = try voco("inspect", "show", "ffffffff", "--store", path)
        #expect(missing.status != 0 && missing.error.contains(path) && missing.error.contains("no record for image ffffffff"))
    }

    @Test func verifyExitsNonZeroAndListsEveryBadRecord() throws {
        let (path, model) = try filledStore()
        #expect(try voco("inspect", "verify", "--store", path).status == 0)
        let bad = [SyntheticKV.imageDigest(2), SyntheticKV.imageDigest(7)]
        do {
            let store = try LMDBStore.open(path: path)
            try store.write { txn in
                for image in bad {
                    let key = RecordKey(model: model.fingerprint, image: image, codec: .shuffleZstd)
                    var bytes = try #require(try txn.readTransaction.recordBytes(key))
                    bytes[bytes.count / 2] ^= 1
                    try txn.transaction.putRecord(key, bytes)
                }
            }
        }
        let text = try voco("inspect", "verify", "--store", path)
        #expect(text.status == 1)
        for image in bad { #expect(text.output.contains(image.hex)) }
        let report = try voco("inspect", "verify", "--store", path, "--json")
        #expect(report.status == 1)
        let failures = try #require((try json(report) as? [String: Any])?["failures"] as? [[String: Any]])
        #expect(Set(failures.compactMap { $0["image"] as? String }) == Set(bad.map(\.hex)))
        #expect(failures.allSatisfy { ($0["reason"] as? String)?.contains("checksum") == true })
    }

    @Test func exportWritesSafetensorsWithKAndVPerLayer() throws {
        let (path, model) = try filledStore()
        let image = SyntheticKV.imageDigest(5)
        let output = temporaryDirectory("record.safetensors")
        let result = try voco("inspect", "export", image.hex, "--store", path, "--output", output)
        #expect(result.status == 0, "\(result.error)")
        let file = try SafeTensorsFile(path: output)
        let kv = try #require(try LMDBStore.open(path: path, options: StoreOptions(readOnly: true)).get(image: image, model: model.fingerprint))
        #expect(file.tensors.count == 4 && file.metadata["image"] == image.hex && file.metadata["first_position"] == "0")
        for layer in 0..<2 {
            let key = try file.tensor("layers.\(layer).key"), value = try file.tensor("layers.\(layer).value")
            #expect(key.shape == [1, 2, 8] && key.dtype == .f16)
            #expect(key.floats() == Array(kv.keys[(layer * 16)..<((layer + 1) * 16)]))
            #expect(value.floats() == Array(kv.values[(layer * 16)..<((layer + 1) * 16)]))
        }
    }

    @Test func removeThenGCDropsTheCollectionsRecords() throws {
        let (path, _) = try filledStore()
        let fill = try voco("debug", "store-fill", "--store", path, "--first", "10", "--records", "4", "--batch", "4", "--collection", "other")
        #expect(fill.status == 0, "\(fill.error)")
        let removed = try voco("inspect", "rm", "synthetic", "--store", path)
        #expect(removed.status == 0 && removed.output.contains("12 images"))
        let dry = try #require(try json(voco("inspect", "gc", "--dry-run", "--store", path, "--json")) as? [String: Any])
        #expect(dry["recordsRemoved"] as? Int == 10)  // images 10 and 11 are still in "other"
        #expect(try voco("inspect", "gc", "--store", path).output.contains("dropped 10 records and 10 image entries"))
        let stats = try #require(try json(voco("inspect", "stats", "--store", path, "--json")) as? [String: Any])
        #expect(stats["records"] as? Int == 4 && stats["images"] as? Int == 4)
        let again = try voco("inspect", "rm", "synthetic", "--store", path)
        #expect(again.status != 0 && again.error.contains("no collection 'synthetic'"))
    }

    @Test func errorsNameTheStoreAndWhatToDo() throws {
        let missing = temporaryDirectory("nowhere")
        let result = try voco("inspect", "stats", "--store", missing)
        #expect(result.status != 0 && result.error.contains(missing) && result.error.contains("--store"))
    }
}
