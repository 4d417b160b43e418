import Foundation
import Testing
import VoCoTestSupport

// MARK: - `voco serve` as a process: SIGTERM with a question in flight, hostile requests

/// One `voco serve` process over the fixture's store (read-only, beside this process, which
/// holds the same store open for writing).
struct ServeProcess {
    let child: ChildProcess
    let client: TestHTTPClient

    static func start(work: String, extra: [String] = []) throws -> ServeProcess {
        let fixture = try QueryFixture.shared.get()
        let portFile = work + "/port-\(UUID().uuidString.prefix(6))"
        let child = try ChildProcess(TestPaths.voco, [
            "serve", "--store", fixture.folder + "/store", "--model", TestPaths.bundledModel, "--listen", "127.0.0.1:0",
            "--port-file", portFile, "--log-format", "text", "--log-level", "warning",
        ] + extra, logs: work)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return ServeProcess(child: child, client: TestHTTPClient(port: port))
            }
            guard child.isRunning else { break }
            usleep(20_000)
        }
        child.stop()
        throw TestSupportError("voco serve did not start: \(child.errorOutput.suffix(2000))")
    }
}

@Suite(.serialized) struct QueryServeProcessTests {
    /// SIGTERM while the server holds questions (computing and waiting): each question it took
    /// is answered, right, then the process exits 0.
    @Test func sigtermLetsQuestionsInFlightFinish() async throws {
        let work = TestPaths.scratch("serve-sigterm")
        let serve = try ServeProcess.start(work: work, extra: ["--compute-threads", "1", "--max-waiting", "32"])
        defer { serve.child.stop() }
        let fixture = try QueryFixture.shared.get()
        let question = fixture.questions[3]
        let body: [String: Any] = ["images": fixture.digests(question.files).map(\.hex), "question": question.question]
        let expected = try QueryFixture.freshAnswer(question.question, files: question.files)
        // Warm, and check the process answers as voco ask does.
        let warm = try await serve.client.ask(body)
        #expect(warm.status == 200 && (try? warm.json()["answer"] as? String) == expected.text, "\(warm.text.prefix(300))")
        let client = serve.client
        // Rounds of 24 questions at once until /metrics shows the server holding at least 2
        // (computing or waiting): on a loaded machine a round may be answered between two polls.
        var inFlight: Task<[HTTPResult?], Never>!
        var held = 0
        for _ in 0..<5 {
            let finished = Counter()
            // Each result, or nil for a request the closing server never took (refused or reset
            // before any byte of an answer): those are not questions in flight.
            inFlight = Task { await withTaskGroup(of: HTTPResult?.self) { group in
                for _ in 0..<24 {
                    group.addTask {
                        defer { finished.add() }
                        do { return try await client.ask(body) } catch let error as HTTPClientError
                            where error.description.hasPrefix("connect to port") || error.description.hasSuffix(" in 0 bytes") {
                            return nil
                        } catch {
                            Issue.record("a question in flight got a broken answer: \(error)")
                            return nil
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            } }
            let watch = Date().addingTimeInterval(10)
            while held < 2, finished.value < 24, Date() < watch {
                let metrics = try await client.get("/metrics").text
                held = metrics.split(separator: "\n").filter { $0.hasPrefix("voco_query_in_flight{") }
                    .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0) { $0 + Int($1) }
            }
            if held >= 2 { break }
            // Missed: every question of the round must still have been answered right.
            for result in await inFlight.value.compactMap({ $0 }) {
                #expect(result.status == 200 && (try? result.json()["answer"] as? String) == expected.text)
            }
        }
        #expect(held >= 2, "the server never held 2 questions at once")
        let started = Date()
        serve.child.send(SIGTERM)
        let status = serve.child.wait(timeout: 30)
        let seconds = Date().timeIntervalSince(started)
        #expect(status == 0, "exit status \(String(describing: status)): \(serve.child.errorOutput.suffix(1000))")
        #expect(seconds < 20)
        // Every question the server took was answered, and answered right.
        let results = await inFlight.value
        let answered = results.compactMap { $0 }
        for result in answered {
            #expect(result.status == 200 && (try? result.json()["answer"] as? String) == expected.text, "\(result.status) \(result.text.prefix(200))")
        }
        #expect(answered.count >= held, "\(held) questions were in flight at the SIGTERM, \(answered.count) answered")
        print("SIGTERM with \(held) questions held: exit \(String(describing: status)) after \(String(format: "%.2f", seconds)) s; \(answered.count) of 24 answered, \(24 - answered.count) not taken")
    }

    @Test func serveSurvivesHostileRequests() async throws {
        let work = TestPaths.scratch("serve-hostile")
        let token = "hostile-test-token-\(UUID().uuidString)"
        let tokenFile = work + "/token"
        try Data(token.utf8).write(to: URL(fileURLWithPath: tokenFile))
        chmod(tokenFile, 0o600)
        let serve = try ServeProcess.start(work: work, extra: ["--token-file", tokenFile])
        defer { serve.child.stop() }
        let routes = [("POST", "/v1/ask"), ("POST", "/v1/ask/stream"), ("GET", "/v1/collections"), ("GET", "/v1/collections/{collection}/members"),
                      ("GET", "/v1/images/{digest}"), ("GET", "/healthz"), ("GET", "/metrics")]
        let cases = HostileRequests.cases(routes: routes, token: token)
        let ran = HostileRequests.run(cases, child: serve.child, port: serve.client.port)
        #expect(ran == cases.count)
        var client = serve.client
        client.token = token
        #expect(try await client.get("/healthz").status == 200)
        #expect(try await client.ask(["collection": "four", "question": "Is there a red circle?"]).status == 200)
        serve.child.send(SIGTERM)
        #expect(serve.child.wait(timeout: 30) == 0)
        print("hostile requests: \(cases.count) cases against voco serve")
    }
}

/// A thread-safe count.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
