import Foundation
import Testing
import VoCoTestSupport
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Hostile HTTP requests never bring a server process down

/// Raw requests a hostile or broken client may send: malformed request lines and headers, lying
/// or overflowing lengths, bad chunking, hostile paths and query values, broken multipart bodies,
/// uploads that are not images or that declare huge ones. Written for any server the `voco`
/// executable runs: `routes` are (method, path template) pairs in which `{x}` stands for a path
/// parameter that each case fills with a hostile value.
enum HostileRequests {
    static let hostileValues = [
        "-1", "0", "99999999999999999999999", "9223372036854775807", "-9223372036854775808", "18446744073709551616",
        "%00", "%zz", "%ff%fe", "..%2F..%2Fetc%2Fpasswd", "a%20b", "%E2%80%AE", String(repeating: "x", count: 10_000), "1e308", "NaN",
    ]

    /// A request; `length` replaces the true Content-Length, `chunked` sends none.
    static func request(_ method: String, _ target: String, headers: [String] = [], body: [UInt8] = [], length: String? = nil,
                        chunked: Bool = false, token: String?) -> [UInt8] {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if let length {
            head += "Content-Length: \(length)\r\n"
        } else if !chunked, !body.isEmpty || method == "POST" {
            head += "Content-Length: \(body.count)\r\n"
        }
        for header in headers { head += header + "\r\n" }
        return Array((head + "\r\n").utf8) + body
    }

    /// Every case, named, for a server with `routes` and bearer `token`.
    static func cases(routes: [(method: String, path: String)], token: String?) -> [(name: String, bytes: [UInt8])] {
        var cases: [(String, [UInt8])] = [
            ("garbage", Array("\u{0}\u{1}\u{2}garbage\r\n\r\n".utf8) + [0xFF, 0xFE, 0x0D, 0x0A, 0x0D, 0x0A]),
            ("no version", Array("GET /healthz\r\n\r\n".utf8)),
            ("unknown method", request("BREW", "/healthz", token: token)),
            ("absolute-form target", request("GET", "http://[::1]:1/healthz", token: token)),
            ("huge header value", request("GET", "/healthz", headers: ["X-Big: " + String(repeating: "a", count: 200_000)], token: token)),
            ("many headers", request("GET", "/healthz", headers: (0..<5_000).map { "X-H\($0): v" }, token: token)),
            ("header without colon", request("GET", "/healthz", headers: ["no colon here"], token: token)),
            ("huge token", request("GET", "/metrics", token: String(repeating: "t", count: 100_000))),
            ("non-ascii token", request("GET", "/metrics", token: "é\u{0}🙂")),
            ("empty bearer", request("GET", "/metrics", headers: ["Authorization: Bearer"], token: nil)),
            ("huge path", request("GET", "/" + String(repeating: "a/", count: 40_000), token: token)),
        ]
        for (method, template) in routes {
            let name = "\(method) \(template)"
            for value in hostileValues {
                let path = template.replacingOccurrences(of: #"\{[a-z_]+\}"#, with: value, options: .regularExpression)
                cases.append(("\(name) with \(value.prefix(24))", request(method, path, token: token)))
                for parameter in ["limit", "offset", "after", "name"] {
                    let filled = template.replacingOccurrences(of: #"\{[a-z_]+\}"#, with: "c", options: .regularExpression)
                    cases.append(("\(name)?\(parameter)=\(value.prefix(24))", request(method, "\(filled)?\(parameter)=\(value)", token: token)))
                }
            }
            guard method == "POST" else { continue }
            let path = template.replacingOccurrences(of: #"\{[a-z_]+\}"#, with: "hostile", options: .regularExpression)
            let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            // A PNG header declaring 100,000 x 100,000 pixels, then nothing.
            var bomb = png + [0, 0, 0, 13] + Array("IHDR".utf8) + [0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0, 8, 6, 0, 0, 0, 0, 0, 0, 0]
            bomb += [0, 0, 0, 0] + Array("IEND".utf8) + [0xAE, 0x42, 0x60, 0x82]
            let boundary = "b0undary"
            cases += [
                ("\(name): length overflows", request(method, path, length: "99999999999999999999999", token: token)),
                ("\(name): negative length", request(method, path, length: "-1", token: token)),
                ("\(name): two lengths", request(method, path, headers: ["Content-Length: 5"], body: Array("{}".utf8), token: token)),
                ("\(name): body shorter than its length", request(method, path, body: Array("{\"a\":".utf8), length: "1000", token: token)),
                ("\(name): bad chunk size", request(method, path, headers: ["Transfer-Encoding: chunked"], body: Array("zz\r\nabc\r\n0\r\n\r\n".utf8), chunked: true, token: token)),
                ("\(name): huge chunk size", request(method, path, headers: ["Transfer-Encoding: chunked"], body: Array("ffffffffffffffffff\r\nabc\r\n".utf8), chunked: true, token: token)),
                ("\(name): chunked and a length", request(method, path, headers: ["Transfer-Encoding: chunked"], body: Array("3\r\nabc\r\n0\r\n\r\n".utf8), length: "3", token: token)),
                ("\(name): empty body", request(method, path, headers: ["Content-Type: application/json"], token: token)),
                ("\(name): not JSON", request(method, path, headers: ["Content-Type: application/json"], body: Array("{\"question\": ".utf8), token: token)),
                ("\(name): deep JSON", request(method, path, headers: ["Content-Type: application/json"], body: Array((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8), token: token)),
                ("\(name): JSON with huge numbers", request(method, path, headers: ["Content-Type: application/json"], body: Array(#"{"question":"q","max_tokens":1e400,"temperature":-1e400,"top_p":99999999999999999999999,"seed":-1,"images":[1,{"a":[]}],"collection":7}"#.utf8), token: token)),
                ("\(name): invalid UTF-8 JSON", request(method, path, headers: ["Content-Type: application/json"], body: Array("{\"question\":\"".utf8) + [0xC3, 0x28, 0xFF] + Array("\"}".utf8), token: token)),
                ("\(name): truncated PNG", request(method, path, body: png + [0, 0, 0, 13], token: token)),
                ("\(name): PNG declaring 10^10 pixels", request(method, path, body: bomb, token: token)),
                ("\(name): JPEG start only", request(method, path, body: [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10], token: token)),
                ("\(name): multipart without boundary", request(method, path, headers: ["Content-Type: multipart/form-data"], body: Array("--x\r\n\r\n".utf8), token: token)),
                ("\(name): multipart huge boundary", request(method, path, headers: ["Content-Type: multipart/form-data; boundary=" + String(repeating: "b", count: 5_000)], body: Array("--b\r\n".utf8), token: token)),
                ("\(name): multipart never closed", request(method, path, headers: ["Content-Type: multipart/form-data; boundary=\(boundary)"],
                                                       body: Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../x\"\r\n\r\n".utf8) + png, token: token)),
                ("\(name): multipart part without headers", request(method, path, headers: ["Content-Type: multipart/form-data; boundary=\(boundary)"],
                                                              body: Array("--\(boundary)\r\n\r\n\r\n--\(boundary)--\r\n".utf8), token: token)),
            ]
        }
        return cases
    }

    /// Sends `bytes` on a fresh connection and reads until the server closes it or 20 s pass;
    /// whatever came back (possibly nothing: closing on garbage is a fine answer).
    static func exchange(_ bytes: [UInt8], port: Int) -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return [] }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
        shutdown(fd, Int32(SHUT_WR))  // a body shorter than its length ends here
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while response.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        return response
    }

    /// Sends every case to the child process behind `client`; records an issue for any case after
    /// which the process is gone, or that got a 5xx other than 503. Returns how many cases ran.
    static func run(_ cases: [(name: String, bytes: [UInt8])], child: ChildProcess, port: Int) -> Int {
        var ran = 0
        for (name, bytes) in cases {
            let response = exchange(bytes, port: port)
            ran += 1
            guard child.isRunning else {
                Issue.record("the server process died after case \"\(name)\": \(child.errorOutput.suffix(2000))")
                return ran
            }
            let head = String(decoding: response.prefix(64), as: UTF8.self)
            if let status = head.split(separator: " ").dropFirst().first.flatMap({ Int($0) }), status >= 500, status != 503 {
                Issue.record("case \"\(name)\" got \(status): \(String(decoding: response.prefix(600), as: UTF8.self))")
            }
        }
        return ran
    }
}

@Suite(.serialized) struct HostileRequestTests {
    @Test func theIngestDaemonSurvivesHostileRequests() async throws {
        let work = TestPaths.scratch("ingestd-hostile")
        let token = "hostile-test-token-\(UUID().uuidString)"
        let tokenFile = work + "/token"
        try Data(token.utf8).write(to: URL(fileURLWithPath: tokenFile))
        chmod(tokenFile, 0o600)
        let daemon = try Daemon.start(work: work, extra: ["--token-file", tokenFile, "--lease", "2"])
        defer { daemon.child.stop() }
        let routes = [("POST", "/v1/collections/{collection}/images"), ("GET", "/v1/collections/{collection}/jobs"),
                      ("GET", "/v1/jobs/{id}"), ("GET", "/healthz"), ("GET", "/metrics")]
        let cases = HostileRequests.cases(routes: routes, token: token)
        let ran = HostileRequests.run(cases, child: daemon.child, port: daemon.client.port)
        #expect(ran == cases.count)
        // Still serving, and the uploads it accepted are worked off (failed, not crashed on).
        var client = daemon.client
        client.token = token
        #expect(try await client.get("/healthz").status == 200)
        let jobs = try await client.get("/v1/collections/hostile/jobs?limit=1000").json()["jobs"] as? [[String: Any]] ?? []
        let deadline = Date().addingTimeInterval(60)
        var states = jobs.map { $0["state"] as? String ?? "" }
        while states.contains(where: { $0 == "queued" || $0 == "running" }), Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
            let now = try await client.get("/v1/collections/hostile/jobs?limit=1000").json()["jobs"] as? [[String: Any]] ?? []
            states = now.map { $0["state"] as? String ?? "" }
        }
        #expect(!states.contains("done"), "no hostile upload is an image: \(states)")
        #expect(!states.contains(where: { $0 == "queued" || $0 == "running" }), "\(states)")
        #expect(daemon.child.isRunning)
        #expect(try daemon.terminate().status == 0)
        let verify = try ChildProcess.run(TestPaths.voco, ["inspect", "verify", "--store", work + "/store"], logs: work)
        #expect(verify.status == 0, "\(verify.output) \(verify.error)")
        print("hostile requests: \(cases.count) cases against voco ingestd, \(states.count) uploads accepted and failed by name")
    }
}
