import Foundation
import Testing
import VoCoPipeline
import VoCoServer
import VoCoStore
import VoCoTestSupport

// MARK: - The ingest API against the real application in this process

@Suite struct IngestAPITests {
    @Test func anUploadIsCompressedAndAnsweredFromItsRecord() async throws {
        let server = try await TestServer.start()
        let client = server.client()
        let names = ["00003.png", "00024.png"]
        var jobs: [String] = []
        for name in names {
            let upload = try await client.post("/v1/collections/demo/images?name=\(name)", body: try sample(name), contentType: "image/png")
            #expect(upload.status == 202, "\(upload.text)")
            let accepted = try upload.json()
            #expect(accepted["digest"] as? String == Digest.sha256(try sample(name)).hex)
            #expect(upload.headers["location"] == "/v1/jobs/\(accepted["job"] as? String ?? "")")
            jobs.append(try #require(accepted["job"] as? String))
        }
        for (job, name) in zip(jobs, names) {
            let done = try await server.waitForJob(job, client: client)
            #expect(done["state"] as? String == "done", "\(done)")
            #expect(done["name"] as? String == name)
        }
        // The records read back answer as the images compressed here do.
        let model = try bundledModel.get()
        let fingerprint = try #require(server.module.ingestor.descriptor.fingerprint as Digest?)
        let members = try server.store.read { try $0.members(of: "demo").map(\.image) }
        #expect(members == names.map { Digest.sha256(try! sample($0)) })
        let stored = try members.map { try model.engineCache(try #require(try server.store.get(image: $0, model: fingerprint))) }
        let paths = names.map { (TestPaths.samples as NSString).appendingPathComponent($0) }
        let fresh = try model.compress(imagePaths: paths).map(\.cache)
        let question = "Which image has a blue circle?"
        #expect(try model.answer(question, caches: stored).text == (try model.answer(question, caches: fresh).text))
        #expect(try server.store.verify().failures.isEmpty)
        try await server.stop()
    }

    @Test func aMultipartUploadTakesTheFilePartAndItsName() async throws {
        let server = try await TestServer.start()
        let client = server.client()
        let form = TestHTTPClient.form(file: try sample("00001.jpg"), filename: "holiday photo.jpg")
        let upload = try await client.post("/v1/collections/forms/images", body: form.body, contentType: form.contentType)
        #expect(upload.status == 202, "\(upload.text)")
        let job = try await server.waitForJob(try #require(try upload.json()["job"] as? String), client: client)
        #expect(job["state"] as? String == "done")
        #expect(job["name"] as? String == "holiday_photo.jpg")
        let digest = Digest.sha256(try sample("00001.jpg"))
        #expect(try server.store.read { try $0.image(digest)?.sourceNames } == ["holiday_photo.jpg"])
        // The uploaded file is gone once its job is done.
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.folder + "/uploads").isEmpty)
        try await server.stop()
    }

    @Test func badUploadsGetProblemsWithStableTypes() async throws {
        let server = try await TestServer.start(maximumBodyBytes: 64 << 10)
        let client = server.client()
        func expectProblem(_ result: HTTPResult, _ status: Int, _ slug: String) throws {
            #expect(result.status == status, "\(result.text)")
            #expect(result.headers["content-type"] == "application/problem+json")
            let problem = try result.json()
            #expect(problem["type"] as? String == "urn:voco:problem:\(slug)")
            #expect(problem["status"] as? Int == status)
        }
        try expectProblem(try await client.post("/v1/collections/c/images", body: Array("hello".utf8)), 415, "not-an-image")
        try expectProblem(try await client.post("/v1/collections/c/images", body: []), 400, "empty-upload")
        try expectProblem(try await client.post("/v1/collections/a%00b/images", body: try sample("00001.jpg")), 400, "invalid-collection")
        try expectProblem(try await client.post("/v1/collections/c/images", body: [UInt8](repeating: 0xFF, count: 100 << 10)), 413, "body-too-large")
        try expectProblem(try await client.post("/v1/collections/c/images", body: Array("--x\r\nbroken".utf8),
                                                 contentType: "multipart/form-data; boundary=x"), 400, "bad-request")
        try expectProblem(try await client.get("/v1/jobs/424242"), 404, "job-not-found")
        try expectProblem(try await client.get("/v1/collections/c/jobs?limit=0"), 400, "invalid-query")
        try expectProblem(try await client.get("/nowhere"), 404, "not-found")
        let wrongMethod = try await client.send("DELETE", "/v1/jobs/1")
        try expectProblem(wrongMethod, 405, "method-not-allowed")
        #expect(wrongMethod.headers["allow"] == "GET")
        #expect(try await client.send("PUT", "/v1/collections/c/images").headers["allow"] == "POST")
        #expect(try server.store.jobs.counts().total == 0)
        try await server.stop()
    }

    @Test func aFullQueueAnswers503WithRetryAfterAndKeepsNothing() async throws {
        let server = try await TestServer.start { $0.maximumQueue = 2; $0.runWorker = false }
        let client = server.client()
        for _ in 0..<2 {
            #expect(try await client.post("/v1/collections/q/images", body: try sample("00001.jpg")).status == 202)
        }
        let refused = try await client.post("/v1/collections/q/images", body: try sample("00004.jpg"))
        #expect(refused.status == 503)
        #expect(refused.headers["retry-after"] == "5")
        #expect(try refused.json()["type"] as? String == "urn:voco:problem:queue-full")
        #expect(try server.store.jobs.counts().queued == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.folder + "/uploads").count == 4)  // 2 files + 2 sidecars
        let metrics = try await client.get("/metrics").text
        #expect(metrics.contains("voco_ingest_uploads_total{result=\"queue_full\"} 1"))
        #expect(metrics.contains("voco_ingest_queue_depth{state=\"queued\"} 2"))
        try await server.stop()
    }

    @Test func theTokenGuardsEveryRouteButHealth() async throws {
        let token = "s3cret-token-0123456789"
        let server = try await TestServer.start(token: token)
        let anonymous = server.client(), wrong = server.client(token: token + "x"), right = server.client(token: token)
        #expect(try await anonymous.get("/healthz").status == 200)
        for path in ["/metrics", "/v1/jobs/1", "/v1/collections/c/jobs", "/nowhere"] {
            let refused = try await anonymous.get(path)
            #expect(refused.status == 401, "\(path)")
            #expect(refused.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
            #expect(try refused.json()["type"] as? String == "urn:voco:problem:unauthorized")
            #expect(try await wrong.get(path).status == 401)
        }
        #expect(try await anonymous.post("/v1/collections/c/images", body: try sample("00001.jpg")).status == 401)
        #expect(try server.store.jobs.counts().total == 0)
        #expect(try await right.get("/metrics").status == 200)
        #expect(try await right.post("/v1/collections/c/images", body: try sample("00001.jpg")).status == 202)
        try await server.stop()
    }

    @Test func jobsAreListedPerCollectionInPages() async throws {
        let server = try await TestServer.start { $0.runWorker = false }
        let client = server.client()
        for (i, collection) in ["a", "b", "a", "a", "b", "a"].enumerated() {
            #expect(try await client.post("/v1/collections/\(collection)/images?name=\(i).jpg", body: try sample("00001.jpg")).status == 202)
        }
        let first = try await client.get("/v1/collections/a/jobs?limit=3").json()
        let firstJobs = try #require(first["jobs"] as? [[String: Any]])
        #expect(firstJobs.map { $0["name"] as? String } == ["0.jpg", "2.jpg", "3.jpg"])
        #expect(firstJobs.allSatisfy { $0["state"] as? String == "queued" && $0["collection"] as? String == "a" })
        let next = try #require(first["next"] as? String)
        let second = try await client.get("/v1/collections/a/jobs?limit=3&after=\(next)").json()
        #expect((second["jobs"] as? [[String: Any]])?.map { $0["name"] as? String } == ["5.jpg"])
        #expect(second["next"] == nil)
        #expect(((try await client.get("/v1/collections/none/jobs").json())["jobs"] as? [Any])?.isEmpty == true)
        try await server.stop()
    }

    @Test func spoolFilesAreIngestedThenMovedToDoneOrFailed() async throws {
        let server = try await TestServer.start(spool: true)
        let spool = server.folder + "/spool/dropped"
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        // Written under a temporary name, renamed into place: taken whole.
        try Data(try sample("00003.png")).write(to: URL(fileURLWithPath: spool + "/three.png.part"))
        try FileManager.default.moveItem(atPath: spool + "/three.png.part", toPath: spool + "/three.png")
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: spool + "/notes.txt"))
        try Data(try sample("00001.jpg")).write(to: URL(fileURLWithPath: spool + "/.hidden.jpg"))  // never taken
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !FileManager.default.fileExists(atPath: spool + "/failed/notes.txt.reason")
                || !FileManager.default.fileExists(atPath: spool + "/done/three.png") {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(FileManager.default.fileExists(atPath: spool + "/done/three.png"))
        #expect(FileManager.default.fileExists(atPath: spool + "/failed/notes.txt"))
        let reason = try String(contentsOfFile: spool + "/failed/notes.txt.reason", encoding: .utf8)
        #expect(reason.contains("not a JPEG or PNG"))
        #expect(FileManager.default.fileExists(atPath: spool + "/.hidden.jpg"))
        let digest = Digest.sha256(try sample("00003.png"))
        #expect(try server.store.read { try $0.members(of: "dropped").map(\.image) } == [digest])
        #expect(try server.store.read { try $0.image(digest)?.sourceNames } == [spool + "/three.png"])
        try await server.stop()
    }
}
