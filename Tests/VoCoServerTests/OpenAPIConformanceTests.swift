import Foundation
import Testing
import VoCoServer
import VoCoTestSupport

// MARK: - The server against Schemas/ingest-api.json

/// Every route the server has is in the spec and every operation in the spec is a route; each
/// operation is exercised so that every status it documents is answered (but 507, which needs a
/// full disk), and every answer is a documented status with the documented content type and a
/// body that validates against the documented schema.
@Suite struct OpenAPIConformanceTests {
    static let specPath = (TestPaths.repositoryRoot as NSString).appendingPathComponent("Schemas/ingest-api.json")
    /// Documented statuses no test here can cause, and why.
    static let unexercised: Set<String> = [
        "uploadImage 507",  // needs a full disk
        "health 503",  // needs a store whose queue cannot be read
    ]

    @Test func theServerAnswersAsTheSpecSays() async throws {
        let spec = try OpenAPISpec(path: Self.specPath)
        #expect(spec.document["openapi"] as? String == "3.1.0")
        let token = "conformance-token-0123456789"
        let server = try await TestServer.start(token: token, maximumBodyBytes: 64 << 10) { $0.maximumQueue = 3; $0.runWorker = false }
        let routes = Set(server.router.routes.map { "\($0.method.rawValue) \($0.path.description)" })
        #expect(routes == Set(spec.operations.map { "\($0.method) \($0.path)" }))

        let client = server.client(token: token), anonymous = server.client()
        let image = try sample("00001.jpg")
        let form = TestHTTPClient.form(file: image, filename: "f.jpg")
        var exchanges: [(operation: String, result: HTTPResult)] = []
        func call(_ operation: String, _ result: HTTPResult) { exchanges.append((operation, result)) }

        call("health", try await anonymous.get("/healthz"))
        call("metrics", try await client.get("/metrics"))
        call("metrics", try await anonymous.get("/metrics"))
        let accepted = try await client.post("/v1/collections/spec/images?name=a.jpg", body: image, contentType: "image/jpeg")
        call("uploadImage", accepted)
        call("uploadImage", try await client.post("/v1/collections/spec/images", body: form.body, contentType: form.contentType))
        call("uploadImage", try await client.post("/v1/collections/spec/images", body: []))
        call("uploadImage", try await anonymous.post("/v1/collections/spec/images", body: image))
        call("uploadImage", try await client.post("/v1/collections/spec/images", body: [UInt8](repeating: 0xFF, count: 65 << 10)))
        call("uploadImage", try await client.post("/v1/collections/spec/images", body: Array("text".utf8)))
        call("uploadImage", try await client.post("/v1/collections/spec/images", body: image))
        call("uploadImage", try await client.post("/v1/collections/spec/images", body: image))  // the fourth: queue full
        call("listJobs", try await client.get("/v1/collections/spec/jobs?limit=2"))
        call("listJobs", try await client.get("/v1/collections/spec/jobs?limit=2&after=2"))
        call("listJobs", try await client.get("/v1/collections/spec/jobs?limit=x"))
        call("listJobs", try await anonymous.get("/v1/collections/spec/jobs"))
        let job = try #require(try accepted.json()["job"] as? String)
        call("getJob", try await client.get("/v1/jobs/\(job)"))
        call("getJob", try await client.get("/v1/jobs/999999"))
        call("getJob", try await anonymous.get("/v1/jobs/\(job)"))

        Self.check(exchanges, against: spec, unexercised: Self.unexercised)
        try await server.stop()
    }

    /// Every answer is a documented status with the documented content type, schema and
    /// headers; every documented status (but `unexercised`) was answered.
    static func check(_ exchanges: [(operation: String, result: HTTPResult)], against spec: OpenAPISpec, unexercised: Set<String>) {
        var answered = Set<String>()
        for (operationID, result) in exchanges {
            guard let operation = spec.operations.first(where: { $0.id == operationID }) else {
                Issue.record("no operation \(operationID) in the spec")
                continue
            }
            answered.insert("\(operationID) \(result.status)")
            guard let response = operation.responses[String(result.status)] else {
                Issue.record("\(operationID) answered \(result.status), which the spec does not document: \(result.text.prefix(200))")
                continue
            }
            let contentType = result.headers["content-type"]?.split(separator: ";").first.map(String.init) ?? ""
            guard let media = response.content[contentType] else {
                Issue.record("\(operationID) \(result.status): content type \(contentType) is not documented (\(response.content.keys.sorted()))")
                continue
            }
            if contentType.hasSuffix("json") {
                guard let body = try? JSONSerialization.jsonObject(with: Data(result.body), options: [.fragmentsAllowed]) else {
                    Issue.record("\(operationID) \(result.status): the body is not JSON: \(result.text.prefix(200))")
                    continue
                }
                for problem in spec.validate(body, against: media) {
                    Issue.record("\(operationID) \(result.status): \(problem)")
                }
            }
            for header in response.headers where result.headers[header.lowercased()] == nil {
                Issue.record("\(operationID) \(result.status): documented header \(header) is missing")
            }
        }
        let documented = Set(spec.operations.flatMap { op in op.responses.keys.map { "\(op.id) \($0)" } })
        #expect(documented.subtracting(answered).subtracting(unexercised).isEmpty,
                "documented but never answered: \(documented.subtracting(answered).subtracting(unexercised).sorted())")
    }

    // MARK: voco serve against Schemas/query-api.json

    static let querySpecPath = (TestPaths.repositoryRoot as NSString).appendingPathComponent("Schemas/query-api.json")
    static let queryUnexercised: Set<String> = [
        "health 503",  // needs a store that cannot be read
    ]

    @Test func theQueryServerAnswersAsItsSpecSays() async throws {
        let spec = try OpenAPISpec(path: Self.querySpecPath)
        #expect(spec.document["openapi"] as? String == "3.1.0")
        let token = "conformance-token-0123456789"
        let server = try await QueryTestServer.start(token: token, maximumBodyBytes: 16 << 10)
        let routes = Set(server.router.routes.map { "\($0.method.rawValue) \($0.path.description)" })
        #expect(routes == Set(spec.operations.map { "\($0.method) \($0.path)" }))
        let client = server.client(token: token), anonymous = server.client(), fixture = server.fixture
        var exchanges: [(operation: String, result: HTTPResult)] = []
        func call(_ operation: String, _ result: HTTPResult) { exchanges.append((operation, result)) }
        let image = fixture.digests(["00003.png"])[0].hex
        call("health", try await anonymous.get("/healthz"))
        call("metrics", try await client.get("/metrics"))
        call("metrics", try await anonymous.get("/metrics"))
        call("listCollections", try await client.get("/v1/collections"))
        call("listCollections", try await anonymous.get("/v1/collections"))
        call("listMembers", try await client.get("/v1/collections/four/members?limit=2"))
        call("listMembers", try await client.get("/v1/collections/four/members?limit=x"))
        call("listMembers", try await client.get("/v1/collections/nope/members"))
        call("listMembers", try await anonymous.get("/v1/collections/four/members"))
        call("getImage", try await client.get("/v1/images/\(image)"))
        call("getImage", try await client.get("/v1/images/\(image.uppercased())"))
        call("getImage", try await client.get("/v1/images/\(String(repeating: "0", count: 64))"))
        call("getImage", try await anonymous.get("/v1/images/\(image)"))
        for (operation, path) in [("ask", "/v1/ask"), ("askStream", "/v1/ask/stream")] {
            call(operation, try await client.ask(["collection": "four", "question": "Which image has a blue circle?"], path: path))
            call(operation, try await client.ask(["collection": "four", "question": "Which image has a blue circle?", "top_p": 3], path: path))
            call(operation, try await anonymous.ask(["collection": "four", "question": "Is there a red circle?"], path: path))
            call(operation, try await client.ask(["collection": "nope", "question": "Is there a red circle?"], path: path))
            call(operation, try await client.ask(["collection": "othermodel", "question": "Is there a red circle?"], path: path))
            call(operation, try await client.post(path, body: [UInt8](repeating: 32, count: 17 << 10), contentType: "application/json"))
            call(operation, try await client.post(path, body: Array("{}".utf8), contentType: "text/plain"))
            call(operation, try await client.ask(["collection": "four", "question": String(repeating: "Is there a red circle? ", count: 80), "max_tokens": 256], path: path))
        }
        // Busy: the one compute thread held at the gate, no waiting place.
        try await server.stop()
        var held: GatedEngine?
        let busy = try await QueryTestServer.start(token: token, options: QueryServerOptions(computeThreads: 1, maximumWaiting: 0)) {
            let gated = GatedEngine($0)
            held = gated
            return gated
        }
        let busyClient = busy.client(token: token)
        let first = Task { try await busyClient.ask(["collection": "four", "question": "Is there a red circle?"]) }
        #expect(await held?.waitForArrivals(1) == true)
        call("ask", try await busyClient.ask(["collection": "four", "question": "Is there a red circle?"]))
        call("askStream", try await busyClient.ask(["collection": "four", "question": "Is there a red circle?"], path: "/v1/ask/stream"))
        held?.release()
        call("ask", try await first.value)
        Self.check(exchanges, against: spec, unexercised: Self.queryUnexercised)
        try await busy.stop()
    }
}

// MARK: - Just enough of OpenAPI 3.1 and JSON Schema

struct OpenAPISpec {
    struct Response {
        var content: [String: Any]
        var headers: [String]
    }

    struct Operation {
        var id: String
        var method: String
        var path: String
        var responses: [String: Response]
    }

    let document: [String: Any]
    let operations: [Operation]

    init(path: String) throws {
        guard let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any],
              let paths = document["paths"] as? [String: [String: Any]] else {
            throw TestSupportError("\(path): not an OpenAPI document with paths")
        }
        self.document = document
        var operations: [Operation] = []
        for (path, methods) in paths {
            for (method, value) in methods {
                guard let op = value as? [String: Any], let id = op["operationId"] as? String,
                      let responses = op["responses"] as? [String: Any] else { continue }
                var resolved: [String: Response] = [:]
                for (status, raw) in responses {
                    guard let response = Self.resolve(raw, in: document) as? [String: Any] else { continue }
                    resolved[status] = Response(content: response["content"] as? [String: Any] ?? [:],
                                                headers: (response["headers"] as? [String: Any]).map { Array($0.keys) } ?? [])
                }
                operations.append(Operation(id: id, method: method.uppercased(), path: path, responses: resolved))
            }
        }
        self.operations = operations
    }

    /// Follows a local `$ref`.
    static func resolve(_ value: Any, in document: [String: Any]) -> Any {
        guard let object = value as? [String: Any], let ref = object["$ref"] as? String, ref.hasPrefix("#/") else { return value }
        var node: Any = document
        for key in ref.dropFirst(2).split(separator: "/") { node = (node as? [String: Any])?[String(key)] ?? [:] }
        return resolve(node, in: document)
    }

    /// Problems of `value` against a media type's schema (type, required, properties,
    /// additionalProperties false, items, enum, pattern, minimum, maximum).
    func validate(_ value: Any, against media: Any) -> [String] {
        guard let schema = (media as? [String: Any])?["schema"] else { return ["no schema"] }
        return check(value, schema, at: "$")
    }

    private func check(_ value: Any, _ rawSchema: Any, at path: String) -> [String] {
        guard let schema = Self.resolve(rawSchema, in: document) as? [String: Any] else { return [] }
        var problems: [String] = []
        if let type = schema["type"] as? String, !Self.matches(value, type) { return ["\(path): \(value) is not of type \(type)"] }
        if let allowed = schema["enum"] as? [String], let text = value as? String, !allowed.contains(text) {
            problems.append("\(path): '\(text)' is not one of \(allowed)")
        }
        if let pattern = schema["pattern"] as? String, let text = value as? String, text.range(of: pattern, options: .regularExpression) == nil {
            problems.append("\(path): '\(text)' does not match \(pattern)")
        }
        if let number = value as? NSNumber, !(value is Bool) {
            if let minimum = schema["minimum"] as? Double, number.doubleValue < minimum { problems.append("\(path): \(number) < \(minimum)") }
            if let maximum = schema["maximum"] as? Double, number.doubleValue > maximum { problems.append("\(path): \(number) > \(maximum)") }
        }
        if let object = value as? [String: Any] {
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for key in schema["required"] as? [String] ?? [] where object[key] == nil { problems.append("\(path): missing \(key)") }
            for (key, member) in object {
                if let property = properties[key] {
                    problems += check(member, property, at: "\(path).\(key)")
                } else if schema["additionalProperties"] as? Bool == false {
                    problems.append("\(path): undocumented property \(key)")
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] {
            for (i, element) in array.enumerated() { problems += check(element, items, at: "\(path)[\(i)]") }
        }
        return problems
    }

    /// JSONSerialization gives booleans as NSNumbers of type char.
    private static func isBoolean(_ value: Any) -> Bool {
        guard let number = value as? NSNumber else { return false }
        return String(cString: number.objCType) == "c"
    }

    private static func matches(_ value: Any, _ type: String) -> Bool {
        switch type {
        case "object": return value is [String: Any]
        case "array": return value is [Any]
        case "string": return value is String
        case "boolean": return isBoolean(value)
        case "integer": return (value as? NSNumber).map { !isBoolean($0) && $0.doubleValue == $0.doubleValue.rounded() } ?? false
        case "number": return value is NSNumber && !isBoolean(value)
        default: return true
        }
    }
}
