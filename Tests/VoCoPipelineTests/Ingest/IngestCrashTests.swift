import Foundation
import Testing
import VoCoPipeline
import VoCoStore
import VoCoTestSupport

// MARK: - `voco ingest` killed with SIGKILL, restarted; two at once

@Suite(.serialized) struct IngestCrashTests {
    /// A folder of generated images with a repeated image and a file that is not an image.
    static func makeFolder(_ work: String, count: Int) throws -> (folder: String, order: [Digest]) {
        let folder = (work as NSString).appendingPathComponent("images")
        let paths = try SyntheticImages.writeJPEGs(count: count, to: folder, seed: 42)
        try FileManager.default.copyItem(atPath: paths[3], toPath: folder + "/img-00003-again.jpg")
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: folder + "/readme.txt"))
        var order: [Digest] = []
        for path in FileWalk.collect([folder]).files where path.hasSuffix(".jpg") {
            let digest = try sha256(file: path)
            if !order.contains(digest) { order.append(digest) }
        }
        return (folder, order)
    }

    static func ingest(_ folder: String, store: String, collection: String = "c") -> [String] {
        ["ingest", folder, "--collection", collection, "--store", store, "--model", TestPaths.bundledModel, "--batch", "3", "--json"]
    }

    /// The collection as `voco inspect ls --json` lists it, and `voco inspect verify`'s status.
    static func listAndVerify(_ store: String, collection: String, logs: String) throws -> (members: [Digest], verify: Int32) {
        let ls = try ChildProcess.run(TestPaths.voco, ["inspect", "ls", collection, "--store", store, "--json", "--limit", "100000"], logs: logs)
        guard ls.status == 0, let page = try JSONSerialization.jsonObject(with: Data(ls.output.utf8)) as? [String: Any],
              let members = page["members"] as? [[String: Any]] else {
            throw TestSupportError("voco inspect ls failed: \(ls.error)")
        }
        let verify = try ChildProcess.run(TestPaths.voco, ["inspect", "verify", "--store", store], logs: logs)
        return (members.compactMap { ($0["image"] as? String).flatMap(Digest.init(hex:)) }, verify.status)
    }

    @Test func killedAtAnyMomentThenRestartedEndsWithTheStoreOfAnUninterruptedRun() throws {
        let work = TestPaths.scratch("crash")
        let (folder, order) = try Self.makeFolder(work, count: 24)
        let reference = (work as NSString).appendingPathComponent("reference")
        let clean = try ChildProcess.run(TestPaths.voco, Self.ingest(folder, store: reference), logs: work)
        #expect(clean.status == 0, "\(clean.error)")
        let expected = try StoreSnapshot(scratchStoreReopen(reference))
        #expect(expected.collections["c"] == order)
        #expect(expected.records.count == order.count)

        // Each attempt picks a point: before the first batch (a random delay in the first half
        // second: store creation, model registration), or once the collection holds a random
        // number of images, then a random 0-60 ms later (mid-batch, mid-commit). Restart until a
        // run finishes; several rounds, each from an empty store.
        var generator = SplitMix64(seed: 13)
        var kills = 0, rounds = 0
        while kills < 24 || rounds < 3, rounds < 12 {
            rounds += 1
            let store = (work as NSString).appendingPathComponent("round-\(rounds)")
            for _ in 0..<60 {
                let target = Int.random(in: 0...order.count, using: &generator)
                let extra = Double.random(in: 0...0.06, using: &generator)
                let child = try ChildProcess(TestPaths.voco, Self.ingest(folder, store: store), logs: work)
                defer { child.stop() }
                let reached = target == 0 ? child.wait(timeout: Double.random(in: 0...0.5, using: &generator)) == nil
                    : Self.wait(for: child, until: target, store: store)
                if reached { usleep(UInt32(extra * 1e6)) }
                if let status = child.wait(timeout: 0) {
                    #expect(status == 0, "round \(rounds): \(child.errorOutput.suffix(1000))")
                    break
                }
                child.send(SIGKILL)
                let status = child.wait(timeout: 10)
                if status == 0 { break }  // it finished just before the signal
                #expect(status == 128 + SIGKILL)
                kills += 1
            }
            // One more run, never killed: it finds everything done (or finishes what is left).
            let last = try ChildProcess.run(TestPaths.voco, Self.ingest(folder, store: store), logs: work)
            #expect(last.status == 0, "round \(rounds): \(last.error.suffix(1000))")
            let (members, verify) = try Self.listAndVerify(store, collection: "c", logs: work)
            #expect(verify == 0, "round \(rounds): voco inspect verify failed")
            #expect(members == order, "round \(rounds): the collection differs from the uninterrupted run's")
            #expect(try StoreSnapshot(scratchStoreReopen(store)) == expected, "round \(rounds)")
        }
        print("ingest crash test: \(kills) SIGKILLs over \(rounds) rounds, each round ending equal to the uninterrupted run")
        #expect(kills >= 20, "only \(kills) kills landed before runs finished")
    }

    /// Waits until `child` has put `count` images into collection `c` (read from this process
    /// while it writes); false when it exited first.
    static func wait(for child: ChildProcess, until count: Int, store: String) -> Bool {
        while child.isRunning {
            if FileManager.default.fileExists(atPath: store + "/data.mdb"),
               let members = try? scratchStoreReopen(store).read({ try $0.collection(named: "c")?.count ?? 0 }), members >= count {
                return true
            }
            usleep(2_000)
        }
        return false
    }

    @Test func twoIngestsIntoOneStoreAtOnceBothFinishCorrectly() throws {
        let work = TestPaths.scratch("concurrent")
        let (folder, order) = try Self.makeFolder(work, count: 30)
        let store = (work as NSString).appendingPathComponent("store")
        let children = try [("c", folder), ("c", folder), ("d", folder)].map { collection, path in
            try ChildProcess(TestPaths.voco, Self.ingest(path, store: store, collection: collection), logs: work)
        }
        defer { children.forEach { $0.stop() } }
        for child in children {
            #expect(child.wait(timeout: 300) == 0, "\(child.command): \(child.errorOutput.suffix(1000))")
        }
        for collection in ["c", "d"] {
            let (members, verify) = try Self.listAndVerify(store, collection: collection, logs: work)
            #expect(members == order, "collection \(collection)")
            #expect(verify == 0)
        }
        #expect(try StoreSnapshot(scratchStoreReopen(store)).records.count == order.count)
    }
}
