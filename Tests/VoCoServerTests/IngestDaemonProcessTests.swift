import Foundation
import Testing
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB
import VoCoTestSupport

// MARK: - `voco ingestd` as a process: uploads over HTTP, SIGTERM and SIGKILL, restarts

/// One daemon process over a store, uploads folder and log folder that outlive it.
struct Daemon {
    let child: ChildProcess
    let client: TestHTTPClient

    /// `store`: a directory or `redis://` URL (default: `work`/store).
    static func start(work: String, store: String? = nil, extra: [String] = []) throws -> Daemon {
        let portFile = work + "/port-\(UUID().uuidString.prefix(6))"
        let child = try ChildProcess(TestPaths.voco, [
            "ingestd", "--store", store ?? work + "/store", "--uploads", work + "/uploads", "--model", TestPaths.bundledModel,
            "--listen", "127.0.0.1:0", "--port-file", portFile, "--batch", "4",
        ] + extra, logs: work)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return Daemon(child: child, client: TestHTTPClient(port: port))
            }
            guard child.isRunning else { break }
            usleep(20_000)
        }
        child.stop()
        throw TestSupportError("voco ingestd did not start: \(child.errorOutput.suffix(2000))")
    }

    /// Every job of `collection`, in id order.
    func jobs(_ collection: String) async throws -> [[String: Any]] {
        try await client.get("/v1/collections/\(collection)/jobs?limit=1000").json()["jobs"] as? [[String: Any]] ?? []
    }

    /// SIGTERM; the seconds it took to exit and its status.
    func terminate() throws -> (seconds: Double, status: Int32) {
        let started = Date()
        child.send(SIGTERM)
        guard let status = child.wait(timeout: 30) else {
            child.stop()
            throw TestSupportError("voco ingestd did not exit within 30 s of SIGTERM")
        }
        return (Date().timeIntervalSince(started), status)
    }
}

@Suite(.serialized) struct IngestDaemonProcessTests {
    static let question = "Which image has a blue circle?"

    /// Uploads generated images and two samples; returns their digests in upload order.
    static func upload(_ daemon: Daemon, count: Int, work: String) async throws -> [Digest] {
        var images = try SyntheticImages.writeJPEGs(count: count, to: work + "/images", seed: 77).map { path in
            Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        images += try ["00003.png", "00024.png"].map(sample)
        for (i, image) in images.enumerated() {
            let result = try await daemon.client.post("/v1/collections/e2e/images?name=\(i).img", body: image)
            #expect(result.status == 202, "\(result.text)")
        }
        return images.map { Digest.sha256($0) }
    }

    /// After every job is done: each job names its image, the collection holds each image once
    /// (in upload order when `ordered`: jobs handed back at shutdown are claimed again first,
    /// while after a crash the batch in flight waits for its lease to end), the store verifies,
    /// and the last two images' records answer as `voco ask` does.
    static func checkFinished(work: String, digests: [Digest], jobs: [[String: Any]], ordered: Bool) throws {
        #expect(jobs.count == digests.count)
        #expect(jobs.allSatisfy { $0["state"] as? String == "done" }, "\(jobs.filter { $0["state"] as? String != "done" }.prefix(3))")
        #expect(jobs.map { $0["digest"] as? String } == digests.map(\.hex))
        let store = try LMDBStore.open(path: work + "/store", options: StoreOptions(readOnly: true))
        let members = try store.read { try $0.members(of: "e2e").map(\.image) }
        #expect(ordered ? members == digests : members.sorted() == digests.sorted())
        let verify = try ChildProcess.run(TestPaths.voco, ["inspect", "verify", "--store", work + "/store"], logs: work)
        #expect(verify.status == 0, "\(verify.output) \(verify.error)")

        let model = try bundledModel.get()
        let fingerprint = try #require(try store.read { try $0.models() }.first?.fingerprint)
        let caches = try digests.suffix(2).map { try model.engineCache(try #require(try store.get(image: $0, model: fingerprint))) }
        let answer = try model.answer(question, caches: caches)
        let paths = ["00003.png", "00024.png"].map { (TestPaths.samples as NSString).appendingPathComponent($0) }
        let ask = try ChildProcess.run(TestPaths.voco, ["ask", "--model", TestPaths.bundledModel, "--json"] + paths.flatMap { ["--image", $0] } + [question],
                                       logs: work)
        let asked = try JSONSerialization.jsonObject(with: Data(ask.output.utf8)) as? [String: Any]
        #expect(answer.text == asked?["answer"] as? String)
    }

    /// Waits until at least `count` of the collection's jobs are done (or all are).
    static func waitForDone(_ daemon: Daemon, atLeast count: Int, timeout: TimeInterval = 120) async throws -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let jobs = try await daemon.jobs("e2e")
            let done = jobs.filter { $0["state"] as? String == "done" }.count
            if done >= min(count, jobs.count), !jobs.isEmpty { return jobs }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestSupportError("fewer than \(count) jobs done after \(Int(timeout)) s")
    }

    @Test func sigtermMidBatchExitsPromptlyAndARestartFinishesTheWork() async throws {
        let work = TestPaths.scratch("ingestd-term")
        // The queue is filled by a daemon without a worker first: were uploads and compression
        // to overlap, a fast machine could finish nearly every job before the first SIGTERM.
        let intake = try Daemon.start(work: work, extra: ["--no-worker"])
        let digests = try await Self.upload(intake, count: 60, work: work)
        #expect(try intake.terminate().status == 0)
        var daemon = try Daemon.start(work: work, extra: ["--shutdown-grace", "0"])
        defer { daemon.child.stop() }
        // Up to three SIGTERMs, each once four more jobs are done; then a daemon finishes the rest.
        var requeued = 0, terms = 0, done = 0
        while terms < 3 {
            let jobs = try await Self.waitForDone(daemon, atLeast: done + 4)
            done = jobs.filter { $0["state"] as? String == "done" }.count
            if done == jobs.count { break }
            let (seconds, status) = try daemon.terminate()
            terms += 1
            #expect(status == 0, "\(daemon.child.errorOutput.suffix(1000))")
            #expect(seconds < 5, "SIGTERM took \(seconds) s")
            if daemon.child.errorOutput.contains("its jobs are back in the queue") { requeued += 1 }
            daemon = try Daemon.start(work: work, extra: ["--shutdown-grace", "0"])
        }
        #expect(terms >= 1 && requeued >= 1, "\(terms) SIGTERMs, \(requeued) landed mid-batch")
        let jobs = try await Self.waitForDone(daemon, atLeast: digests.count)
        try Self.checkFinished(work: work, digests: digests, jobs: jobs, ordered: true)
        #expect(try daemon.terminate().status == 0)
    }

    @Test func sigkillThenARestartFinishesEveryAcceptedUpload() async throws {
        let work = TestPaths.scratch("ingestd-kill")
        var daemon = try Daemon.start(work: work, extra: ["--lease", "1"])
        defer { daemon.child.stop() }
        let digests = try await Self.upload(daemon, count: 30, work: work)
        _ = try await Self.waitForDone(daemon, atLeast: 4)
        daemon.child.send(SIGKILL)
        #expect(daemon.child.wait(timeout: 10) == 128 + SIGKILL)
        daemon = try Daemon.start(work: work, extra: ["--lease", "1"])
        let jobs = try await Self.waitForDone(daemon, atLeast: digests.count)
        try Self.checkFinished(work: work, digests: digests, jobs: jobs, ordered: false)
        #expect(try FileManager.default.contentsOfDirectory(atPath: work + "/uploads").isEmpty)
        #expect(try daemon.terminate().status == 0)
    }
}
