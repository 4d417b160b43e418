import Foundation
import Testing
@testable import VoCoServer
import VoCoStore
import VoCoTestSupport

// MARK: - `voco serve`'s API, in process, over a store the ingest library filled

@Suite(.serialized) struct QueryAPITests {
    /// Every answer from stored records equals `voco ask`'s answer from the same images
    /// compressed now (the store's codec is lossless), token for token; the images used are the
    /// ones asked about, in order, numbered as the model saw them.
    @Test func answersEqualVocoAskOverTheSameImages() async throws {
        let server = try await QueryTestServer.start()
        let client = server.client(), fixture = server.fixture
        for question in fixture.questions {
            let digests = fixture.digests(question.files)
            let result = try await client.ask(["images": digests.map(\.hex), "question": question.question])
            #expect(result.status == 200, "\(result.text.prefix(300))")
            let answer = try JSONDecoder().decode(AskAnswer.self, from: Data(result.body))
            let fresh = try QueryFixture.freshAnswer(question.question, files: question.files)
            #expect(answer.answer == fresh.text && answer.tokens == fresh.tokens, "\(question.question): served '\(answer.answer)', voco ask '\(fresh.text)'")
            #expect(answer.used.map(\.digest) == digests.map(\.hex) && answer.used.map(\.number) == Array(1...digests.count))
            #expect(answer.model == fixture.fingerprint.hex && answer.plan == "all" && !answer.ranked && answer.candidates == digests.count)
            #expect(answer.used.map { ($0.name.map { ($0 as NSString).lastPathComponent }) } == question.files.map { Optional($0) })
        }
        // Over a collection: its members in collection order.
        let question = "How many objects are in image 1?"
        let result = try await client.ask(["collection": "four", "question": question])
        let answer = try JSONDecoder().decode(AskAnswer.self, from: Data(result.body))
        let fresh = try QueryFixture.freshAnswer(question, files: fixture.four)
        #expect(answer.answer == fresh.text && answer.tokens == fresh.tokens)
        #expect(answer.used.map(\.ordinal) == [0, 1, 2, 3].map { Optional(UInt64($0)) })
        #expect(answer.used.map(\.digest) == fixture.digests(fixture.four).map(\.hex))
        // Narrowed to two members, in collection order.
        let narrowed = try await client.ask(["collection": "four", "images": fixture.digests([fixture.four[2], fixture.four[0]]).map(\.hex),
                                              "question": "Which image has a blue circle?"]).json()
        #expect((narrowed["used"] as? [[String: Any]])?.compactMap { $0["ordinal"] as? Int } == [0, 2])
        try await server.stop()
    }

    /// The stream's text events concatenate to the answer, and its answer event is the JSON
    /// answer (timings aside).
    @Test func theStreamCarriesTheSameAnswer() async throws {
        let server = try await QueryTestServer.start()
        let client = server.client(), fixture = server.fixture
        for question in fixture.questions.prefix(4) {
            let body: [String: Any] = ["images": fixture.digests(question.files).map(\.hex), "question": question.question, "max_tokens": 16]
            let json = try JSONDecoder().decode(AskAnswer.self, from: Data(try await client.ask(body).body))
            let streamed = try await client.ask(body, path: "/v1/ask/stream")
            #expect(streamed.status == 200 && streamed.headers["content-type"] == "text/event-stream")
            let events = serverSentEvents(streamed.text)
            let texts = events.filter { $0.event == "text" }.compactMap { event -> String? in
                (try? JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any])?["text"] as? String
            }
            #expect(texts.joined() == json.answer, "\(texts) vs \(json.answer)")
            #expect(events.last?.event == "answer" && events.filter { $0.event == "answer" }.count == 1)
            var final = try JSONDecoder().decode(AskAnswer.self, from: Data((events.last?.data ?? "").utf8))
            final.timings = json.timings
            #expect(final == json)
        }
        // An error before the first event is a problem with its status, not a stream.
        let missing = try await client.ask(["collection": "nope", "question": "Is there a red circle?"], path: "/v1/ask/stream")
        #expect(missing.status == 404 && missing.headers["content-type"] == "application/problem+json")
        try await server.stop()
    }

    /// Each error is a problem with its stable type; 400s name the member.
    @Test func errorsAreProblemsNamingTheirInput() async throws {
        let server = try await QueryTestServer.start(options: QueryServerOptions(maximumQuestionCharacters: 100, maximumAnswerTokens: 64, maximumImages: 4))
        let client = server.client(), fixture = server.fixture
        let known = fixture.digests(["00031.png"])[0].hex
        func expectProblem(_ result: HTTPResult, _ status: Int, _ slug: String, mentioning: [String] = [], _ note: String = "") throws {
            #expect(result.status == status, "\(note): \(result.text.prefix(300))")
            #expect(result.headers["content-type"] == "application/problem+json", "\(note)")
            let body = try result.json()
            #expect(body["type"] as? String == "urn:voco:problem:\(slug)", "\(note): \(result.text.prefix(300))")
            for word in mentioning { #expect((body["detail"] as? String ?? "").contains(word), "\(note): detail lacks \(word): \(body["detail"] ?? "")") }
        }
        let unknown = String(repeating: "ab", count: 32)
        try expectProblem(try await client.ask(["collection": "nope", "question": "Is there a red circle?"]), 404, "unknown-collection", mentioning: ["nope"])
        try expectProblem(try await client.ask(["images": [unknown], "question": "Is there a red circle?"]), 404, "unknown-image", mentioning: [unknown])
        try expectProblem(try await client.ask(["collection": "four", "images": [known], "question": "Is there a red circle?"]), 404,
                          "not-in-collection", mentioning: [known, "four"])
        try expectProblem(try await client.get("/v1/images/\(unknown)"), 404, "unknown-image")
        try expectProblem(try await client.get("/v1/images/XYZ"), 400, "invalid-digest")
        try expectProblem(try await client.get("/v1/collections/nope/members"), 404, "unknown-collection")
        try expectProblem(try await client.get("/v1/collections/four/members?limit=0"), 400, "invalid-query", mentioning: ["limit"])
        try expectProblem(try await client.get("/v1/collections/four/members?offset=-1"), 400, "invalid-query", mentioning: ["offset"])
        // Records only for another model: 409 naming the image and both fingerprints.
        try expectProblem(try await client.ask(["collection": "othermodel", "question": "Is there a red circle?"]), 409, "wrong-model",
                          mentioning: [fixture.foreignImage.hex, fixture.foreignModel.hex, fixture.fingerprint.hex, "othermodel"])
        // The body.
        for bad in ["{", "[1]", "\"x\"", "", "{\"question\": \"a\"} x"] {
            try expectProblem(try await client.post("/v1/ask", body: Array(bad.utf8), contentType: "application/json"), 400, "malformed-json", bad)
        }
        try expectProblem(try await client.post("/v1/ask", body: Array("{}".utf8), contentType: "text/plain"), 415, "unsupported-media-type")
        try expectProblem(try await client.post("/v1/ask", body: [UInt8](repeating: 32, count: 65 << 10), contentType: "application/json"), 413, "body-too-large")
        try expectProblem(try await client.ask(["collection": "four", "question": String(repeating: "é", count: 101)]), 400, "question-too-long",
                          mentioning: ["question", "100"])
        try expectProblem(try await client.ask(["images": Array(repeating: known, count: 5), "question": "a?"]), 400, "too-many-images", mentioning: ["images", "4"])
        try expectProblem(try await client.ask(["images": [known, "zz"], "question": "a?"]), 400, "invalid-digest", mentioning: ["images[1]"])
        try expectProblem(try await client.ask(["collection": "", "question": "a?"]), 400, "invalid-collection", mentioning: ["collection"])
        let badOptions: [(String, Any)] = [("max_tokens", 0), ("max_tokens", 65), ("max_tokens", "8"), ("max_tokens", 1.5), ("max_tokens", true),
                                           ("temperature", -1), ("temperature", "hot"), ("top_p", 0), ("top_p", 1.5), ("seed", -1), ("seed", 1.5),
                                           ("seed", 1e30), ("question", 7), ("collection", 3), ("images", "x"), ("colour", "red")]
        for (member, value) in badOptions {
            var body: [String: Any] = ["collection": "four", "question": "Is there a red circle?"]
            body[member] = value
            try expectProblem(try await client.ask(body), 400, "invalid-field", mentioning: [member], "\(member)=\(value)")
        }
        try expectProblem(try await client.ask(["question": "Is there a red circle?"]), 400, "invalid-field", mentioning: ["collection or images"])
        try expectProblem(try await client.ask(["collection": "four", "question": "  "]), 400, "invalid-field", mentioning: ["question"])
        try await server.stop()
    }

    @Test func storeRoutesShowCollectionsMembersAndImages() async throws {
        let server = try await QueryTestServer.start()
        let client = server.client(), fixture = server.fixture
        let collections = try await client.get("/v1/collections").json()["collections"] as? [[String: Any]] ?? []
        let counts = Dictionary(uniqueKeysWithValues: collections.map { ($0["name"] as? String ?? "", $0["count"] as? Int ?? -1) })
        #expect(counts["four"] == 4 && counts["othermodel"] == 1 && (counts["samples"] ?? 0) > 10)
        // Paged: three, then the fourth, and no next after the last.
        let first = try await client.get("/v1/collections/four/members?limit=3").json()
        #expect(first["count"] as? Int == 4 && first["next"] as? Int == 3)
        let second = try await client.get("/v1/collections/four/members?offset=3&limit=3").json()
        #expect(second["next"] == nil)
        let members = ((first["members"] as? [[String: Any]]) ?? []) + ((second["members"] as? [[String: Any]]) ?? [])
        #expect(members.compactMap { $0["digest"] as? String } == fixture.digests(fixture.four).map(\.hex))
        #expect(members.compactMap { ($0["names"] as? [String])?.first.map { ($0 as NSString).lastPathComponent } } == fixture.four)
        #expect(members.compactMap { $0["ordinal"] as? Int } == [0, 1, 2, 3])
        let beyond = try await client.get("/v1/collections/four/members?offset=9007199254740991").json()
        #expect((beyond["members"] as? [Any])?.isEmpty == true)
        // One image: its entry and its records.
        let digest = fixture.digests(["00003.png"])[0]
        let image = try await client.get("/v1/images/\(digest.hex)").json()
        #expect(image["format"] as? String == "png" && (image["names"] as? [String])?.map { ($0 as NSString).lastPathComponent } == ["00003.png"])
        let records = image["records"] as? [[String: Any]] ?? []
        #expect(records.count == 1 && records[0]["model"] as? String == fixture.fingerprint.hex && records[0]["servedModel"] as? Bool == true)
        #expect(records[0]["codec"] as? String == fixture.store.codec.codec.name && (records[0]["rows"] as? Int ?? 0) > 0 && (records[0]["bytes"] as? Int ?? 0) > 0)
        let foreign = try await client.get("/v1/images/\(fixture.foreignImage.hex)").json()
        let foreignRecords = foreign["records"] as? [[String: Any]] ?? []
        #expect(foreignRecords.count == 1 && foreignRecords[0]["model"] as? String == fixture.foreignModel.hex && foreignRecords[0]["servedModel"] as? Bool == false)
        try await server.stop()
    }

    @Test func theTokenIsRequiredWhenSet() async throws {
        let token = "query-test-token-0123456789"
        let server = try await QueryTestServer.start(token: token)
        let anonymous = server.client(), wrong = server.client(token: "not-the-token-0123456789"), client = server.client(token: token)
        for path in ["/v1/collections", "/v1/collections/four/members", "/v1/images/\(String(repeating: "0", count: 64))", "/metrics"] {
            for refused in [anonymous, wrong] {
                let result = try await refused.get(path)
                #expect(result.status == 401 && result.headers["www-authenticate"] != nil, "\(path)")
            }
        }
        #expect(try await anonymous.ask(["collection": "four", "question": "Is there a red circle?"]).status == 401)
        #expect(try await anonymous.ask(["collection": "four", "question": "Is there a red circle?"], path: "/v1/ask/stream").status == 401)
        #expect(try await client.ask(["collection": "four", "question": "Is there a red circle?"]).status == 200)
        #expect(try await client.get("/v1/collections").status == 200)
        #expect(try await anonymous.get("/healthz").status == 200)
        try await server.stop()
    }

    /// 32 clients at once against 1 compute thread and 4 waiting places: every request is
    /// answered with the right answer or refused with 503 busy + Retry-After; while the gate holds
    /// the first question, the sixth and later are refused for certain. Memory stays bounded.
    @Test func thirtyTwoClientsAreAnsweredOrRefused() async throws {
        var gate: GatedEngine?
        let server = try await QueryTestServer.start(options: QueryServerOptions(computeThreads: 1, maximumWaiting: 4)) { inner in
            let gated = GatedEngine(inner)
            gate = gated
            return gated
        }
        let client = server.client(), fixture = server.fixture
        let question = fixture.questions[3]
        let body: [String: Any] = ["images": fixture.digests(question.files).map(\.hex), "question": question.question]
        let expected = try QueryFixture.freshAnswer(question.question, files: question.files)
        let rssBefore = residentBytes()
        func check(_ results: [HTTPResult]) throws -> (answered: Int, refused: Int) {
            var answered = 0, refused = 0
            for result in results {
                if result.status == 200 {
                    let answer = try JSONDecoder().decode(AskAnswer.self, from: Data(result.body))
                    #expect(answer.answer == expected.text && answer.tokens == expected.tokens)
                    answered += 1
                } else {
                    #expect(result.status == 503 && result.headers["retry-after"] == "1", "\(result.status) \(result.text.prefix(200))")
                    #expect((try? result.json()["type"] as? String) == "urn:voco:problem:busy")
                    refused += 1
                }
            }
            return (answered, refused)
        }
        // Held at the gate: one computing, four waiting, the other 27 refused.
        let held = Task { try await withThrowingTaskGroup(of: HTTPResult.self) { group in
            for _ in 0..<5 { group.addTask { try await client.ask(body) } }
            return try await group.reduce(into: []) { $0.append($1) }
        } }
        #expect(await gate?.waitForArrivals(1) == true)
        while server.module.inFlight.waiting < 4 { try await Task.sleep(for: .milliseconds(5)) }
        let refusedNow = try await withThrowingTaskGroup(of: HTTPResult.self) { group in
            for i in 0..<27 { group.addTask { try await client.ask(body, path: i % 2 == 0 ? "/v1/ask" : "/v1/ask/stream") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(refusedNow.allSatisfy { $0.status == 503 })
        gate?.release()
        let first = try check(try await held.value + refusedNow)
        #expect(first.answered == 5 && first.refused == 27)
        // Open gate: 32 at once, each answered correctly or refused.
        let free = try await withThrowingTaskGroup(of: HTTPResult.self) { group in
            for _ in 0..<32 { group.addTask { try await client.ask(body) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let second = try check(free)
        #expect(second.answered >= 5 && second.answered + second.refused == 32)
        let metrics = try await client.get("/metrics").text
        #expect(metrics.contains("voco_query_refusals_total{reason=\"busy\"}"))
        #expect(metrics.contains("voco_query_generated_tokens_total") && metrics.contains("voco_query_cache_hits_total"))
        let grown = residentBytes() - rssBefore
        #expect(grown < 512 << 20, "RSS grew by \(grown >> 20) MiB")
        print("32 clients: \(second.answered) answered, \(second.refused) refused (503); RSS grew \(grown >> 20) MiB")
        try await server.stop()
    }

    @Test func theComputePoolRefusesPastItsBound() throws {
        let pool = ComputePool(threads: 1, waiting: 1)
        let gate = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        #expect(pool.submit { gate.wait(); done.signal() })
        while pool.counts.computing < 1 { usleep(1000) }
        #expect(pool.submit { done.signal() })
        #expect(!pool.submit { done.signal() })
        gate.signal()
        done.wait()
        done.wait()
        #expect(pool.stop(timeout: 10))
        #expect(!pool.submit {})
    }
}

/// This process's resident set, from /proc/self/status.
func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
}
