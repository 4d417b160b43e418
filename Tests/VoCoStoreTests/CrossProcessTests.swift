import Foundation
import Testing
@testable import VoCoStore

/// Reader and writer in different processes: the other process is the built `voco`.
@Suite struct CrossProcessTests {
    @Test func aReaderSeesWholeBatchesWhileAnotherProcessWritesAndGrowsTheMap() throws {
        let model = SyntheticKV.model(layers: 2, kvHeads: 2, headDim: 8, tokensPerImage: 2, dtype: .f32, seed: 5)
        // A 128 KiB map: the writer process must grow it, and this reader must follow.
        let store = try makeStore(codec: CodecSettings(codec: .zstd), models: []) { $0.initialMapSize = 128 << 10 }
        let initialMap = store.mapSize
        let (total, batch) = (300, 10)
        let writer = try startProcess(vocoExecutable(), [
            "debug", "store-fill", "--store", store.path, "--dtype", "F32", "--layers", "2", "--kv-heads", "2",
            "--head-dim", "8", "--tokens", "2", "--model-seed", "5", "--records", "\(total)", "--batch", "\(batch)", "--pause-ms", "3",
        ])
        var counts: [Int] = []
        var writerDone = false
        while !writerDone {
            writerDone = !writer.isRunning  // one more snapshot after the writer has exited
            let count = try store.read { txn -> Int in
                let members = try txn.members(of: "synthetic")
                for member in members {
                    let (ordinal, image) = (member.ordinal, member.image)
                    #expect(image == SyntheticKV.imageDigest(Int(ordinal)))
                    let kv = try txn.record(image: image, model: model.fingerprint)
                    #expect(kv == SyntheticKV.make(layers: 2, tokens: 2, kvHeads: 2, headDim: 8, seed: ordinal, modelSeed: 5),
                            "record \(ordinal) of a snapshot with \(members.count) members")
                    #expect(try txn.image(image)?.sourceNames == ["synthetic-\(ordinal)"])
                }
                return members.count
            }
            #expect(count % batch == 0, "a snapshot saw part of a batch: \(count) members")
            counts.append(count)
        }
        let result = try writer.finish()
        #expect(result.status == 0, "voco debug store-fill: \(result.error)")
        #expect(counts.last == total)
        #expect(counts.contains { $0 > 0 && $0 < total }, "no snapshot saw the writer in progress: \(Set(counts).sorted())")
        #expect(zip(counts, counts.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(store.mapSize > initialMap)  // adopted the size the writer process grew the map to
    }

    @Test func readerThreadsKeepReadingWhileAWriterThreadGrowsTheMap() throws {
        let model = SyntheticKV.model(layers: 2, kvHeads: 4, headDim: 32, tokensPerImage: 4, dtype: .f32)
        let store = try makeStore(codec: CodecSettings(codec: .zstd, zstdLevel: 1), models: [model]) { $0.initialMapSize = 128 << 10 }
        let initialMap = store.mapSize
        let (batches, batch) = (24, 4)
        let cache = { (n: Int) in SyntheticKV.make(layers: 2, tokens: 4, kvHeads: 4, headDim: 32, seed: UInt64(n)) }
        let done = Flag()
        let failures = FailureLog()
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            do {
                if thread == 0 {
                    defer { done.set() }
                    for b in 0..<batches {
                        let items = (b * batch..<(b + 1) * batch).map { (image: SyntheticKV.imageDigest($0), kv: cache($0)) }
                        try store.putBatch(items, model: model.fingerprint)
                        try store.write { try $0.append(items.map(\.image), to: "c") }
                    }
                } else {
                    var finished = false
                    while !finished {
                        finished = done.isSet
                        try store.read { txn in
                            for member in try txn.members(of: "c") where try txn.record(image: member.image, model: model.fingerprint) != cache(Int(member.ordinal)) {
                                failures.add("thread \(thread): record \(member.ordinal) differs")
                            }
                        }
                    }
                }
            } catch {
                failures.add("thread \(thread): \(error)")
            }
        }
        #expect(failures.messages.isEmpty, "\(failures.messages.prefix(3))")
        #expect(store.mapSize > initialMap)
        #expect(try store.stats().records == batches * batch)
    }

    @Test func readersInOtherProcessesSeeConsistentSnapshotsWhileThisProcessWrites() throws {
        let model = tinyModel()
        let store = try makeStore(models: [model])
        let batch = 8
        var readers: [RunningProcess] = []
        for round in 0..<12 {
            let encoded = try (0..<batch).map { i in
                try store.encode(tinyCache(round * batch + i, model: model), image: SyntheticKV.imageDigest(round * batch + i), model: model.fingerprint)
            }
            try store.write { txn in
                for record in encoded {
                    try txn.put(record)
                    try txn.putImage(record.key.image, ImageInfo(byteCount: 1, format: "png", width: 1, height: 1, sourceNames: ["\(record.key.image.short).png"]))
                }
                try txn.append(encoded.map(\.key.image), to: "c")
            }
            readers.append(try startProcess(vocoExecutable(), ["inspect", "stats", "--store", store.path, "--json"]))
            readers.append(try startProcess(vocoExecutable(), ["inspect", "verify", "--store", store.path, "--json"]))
        }
        var seen = Set<Int>()
        for reader in readers {
            let result = try reader.finish()
            #expect(result.status == 0, "\(result.error)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
            if let records = json["records"] as? Int {  // stats: records and memberships come from one snapshot
                #expect(records % batch == 0 && json["collectionMembers"] as? Int == records)
                seen.insert(records)
            } else {
                let checked = try #require(json["recordsChecked"] as? Int)
                #expect(checked % batch == 0 && (json["failures"] as? [Any])?.isEmpty == true)
            }
        }
        #expect(!seen.isEmpty)
    }
}
