import Foundation
import Hummingbird
import Logging
import NIOCore
import VoCoStore

// MARK: - The query API (Schemas/query-api.json)

extension ProblemType {
    public static let malformedJSON = ProblemType("malformed-json", .badRequest, "The body is not a JSON object")
    public static let invalidField = ProblemType("invalid-field", .badRequest, "A member of the request is missing, of the wrong type or out of range")
    public static let questionTooLong = ProblemType("question-too-long", .badRequest, "The question is over the server's limit")
    public static let tooManyImages = ProblemType("too-many-images", .badRequest, "The request names more images than the server's limit")
    public static let invalidDigest = ProblemType("invalid-digest", .badRequest, "An image digest is not 64 lowercase hex digits")
    public static let unknownCollection = ProblemType("unknown-collection", .notFound, "No such collection")
    public static let unknownImage = ProblemType("unknown-image", .notFound, "No such image in the store")
    public static let notInCollection = ProblemType("not-in-collection", .notFound, "The image is not a member of the collection")
    public static let wrongModel = ProblemType("wrong-model", .conflict, "The image's records are for another model")
    public static let noRecord = ProblemType("no-record", .conflict, "The image was never compressed for this model")
    public static let noImages = ProblemType("no-images", .unprocessableContent, "There is nothing to ask about")
    public static let doesNotFit = ProblemType("does-not-fit", .unprocessableContent, "The question does not fit the model's context")
    public static let busy = ProblemType("busy", .serviceUnavailable, "The server is computing as many questions as it may; retry later")

    public static let query: [ProblemType] = [malformedJSON, invalidField, questionTooLong, tooManyImages, invalidDigest, unknownCollection,
                                              unknownImage, notInCollection, wrongModel, noRecord, noImages, doesNotFit, busy]
}

struct CollectionList: Codable, Sendable {
    struct Entry: Codable, Sendable {
        var name: String
        var count: Int
    }
    var collections: [Entry]
}

struct MemberPage: Codable, Sendable {
    struct Member: Codable, Sendable {
        var ordinal: UInt64
        var digest: String
        var names: [String]
    }
    var collection: String
    var count: Int
    var offset: Int
    var members: [Member]
    var next: Int?
}

struct ImageView: Codable, Sendable {
    struct Record: Codable, Sendable {
        var model: String
        var codec: String
        var bytes: Int
        var rows: Int
        var servedModel: Bool
    }
    var digest: String
    var byteCount: Int
    var format: String
    var width: Int
    var height: Int
    var names: [String]
    var firstSeen: String
    var records: [Record]
}

struct QueryRoutes: Sendable {
    let store: CacheStore
    let engine: any QueryEngine
    let pool: ComputePool
    let options: QueryServerOptions
    let maximumBodyBytes: Int
    let metrics: QueryMetrics
    let logger: Logger
    static let maximumPageSize = 1000
    static let defaultPageSize = 100

    func add(to router: Router<ServerContext>) {
        router.post("/v1/ask", use: ask)
        router.post("/v1/ask/stream", use: askStream)
        router.get("/v1/collections", use: listCollections)
        router.get("/v1/collections/:collection/members", use: listMembers)
        router.get("/v1/images/:digest", use: image)
    }

    // MARK: Ask

    @Sendable func ask(_ request: Request, context: ServerContext) async throws -> Response {
        let input = try await parse(request)
        let (engine, metrics) = (self.engine, self.metrics)
        let started = ContinuousClock.now
        let answer: AskAnswer = try await compute { try engine.ask(input, onText: nil) }
        metrics.record(answer, duration: ContinuousClock.now - started)
        return try jsonResponse(answer)
    }

    /// Server-sent events: `text` events as the answer grows, then `answer` (or `error`). Errors
    /// before the first event are answered as problems with their status.
    @Sendable func askStream(_ request: Request, context: ServerContext) async throws -> Response {
        let input = try await parse(request)
        let (engine, metrics) = (self.engine, self.metrics)
        let (events, continuation) = AsyncStream.makeStream(of: StreamEvent.self)
        let started = ContinuousClock.now
        let admitted = pool.submit {
            do {
                let answer = try engine.ask(input) { continuation.yield(.text($0)) }
                metrics.record(answer, duration: ContinuousClock.now - started)
                continuation.yield(.answer(answer))
            } catch {
                metrics.record(error)
                continuation.yield(.error(error))
            }
            continuation.finish()
        }
        guard admitted else { throw refuseBusy() }
        let iterator = IteratorBox(events.makeAsyncIterator())
        let first = await iterator.next()
        if case let .error(error)? = first { throw error }
        let logger = self.logger
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: ResponseBody { writer in
            var event = first
            while let current = event {
                try await writer.write(ByteBuffer(bytes: Self.encode(current, instance: request.uri.path, logger: logger)))
                event = await iterator.next()
            }
            try await writer.finish(nil)
        })
    }

    enum StreamEvent: Sendable {
        case text(String)
        case answer(AskAnswer)
        case error(Error)
    }

    /// One event in the text/event-stream format (the data is one line of JSON).
    static func encode(_ event: StreamEvent, instance: String, logger: Logger) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let (name, data): (String, Data?)
        switch event {
        case let .text(text): (name, data) = ("text", try? encoder.encode(["text": text]))
        case let .answer(answer): (name, data) = ("answer", try? encoder.encode(answer))
        case let .error(error):
            let problem = error as? Problem ?? Problem(.internalError, "the server failed while generating; its log says why")
            if !(error is Problem) { logger.error("question failed", metadata: ["error": "\(error)"]) }
            (name, data) = ("error", try? encoder.encode(Problem.Body(type: problem.type.uri, title: problem.type.title, status: Int(problem.status.code),
                                                                      detail: problem.detail, instance: instance)))
        }
        return Array("event: \(name)\ndata: ".utf8) + Array(data ?? Data("{}".utf8)) + Array("\n\n".utf8)
    }

    /// Runs `body` on a compute thread; 503 at once when they are all taken and the line is full.
    func compute<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let metrics = self.metrics
        let result: Result<T, Error>? = await withCheckedContinuation { continuation in
            let admitted = pool.submit { continuation.resume(returning: Result { try body() }) }
            if !admitted { continuation.resume(returning: nil) }
        }
        guard let result else { throw refuseBusy() }
        if case let .failure(error) = result { metrics.record(error) }
        return try result.get()
    }

    func refuseBusy() -> Problem {
        metrics.refusedBusy.increment()
        return Problem(.busy, "\(pool.threads) questions are computing and \(pool.waiting) waiting; retry after \(options.retryAfterSeconds) s",
                       headers: [.retryAfter: String(options.retryAfterSeconds)])
    }

    // MARK: The request body

    static let askMembers: Set<String> = ["collection", "images", "question", "max_tokens", "temperature", "top_p", "seed"]

    func parse(_ request: Request) async throws -> AskInput {
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw Problem(.unsupportedMediaType, "send the question as application/json, not \(type.prefix(100))")
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maximumBodyBytes {
            throw Problem(.bodyTooLarge, "the body is \(length) bytes; the limit is \(maximumBodyBytes)")
        }
        let bytes = try await collectBody(request, limit: maximumBodyBytes)
        do { return try Self.parseAsk(bytes, options: options) } catch let problem as Problem {
            metrics.refusedInvalid.increment()
            throw problem
        }
    }

    /// The request's members, each checked, the failing one named.
    static func parseAsk(_ bytes: [UInt8], options: QueryServerOptions) throws -> AskInput {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw Problem(.malformedJSON, "the body must be one JSON object, e.g. {\"collection\": \"photos\", \"question\": \"...\"}")
        }
        if let unknown = object.keys.sorted().first(where: { !askMembers.contains($0) }) {
            throw Problem(.invalidField, "\(unknown.prefix(100)): not a member of the request; the members are \(askMembers.sorted().joined(separator: ", "))")
        }
        guard let question = object["question"] as? String else {
            throw Problem(.invalidField, "question: required, a string")
        }
        guard !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw Problem(.invalidField, "question: must not be empty")
        }
        guard question.unicodeScalars.count <= options.maximumQuestionCharacters else {
            throw Problem(.questionTooLong, "question: \(question.unicodeScalars.count) characters (Unicode code points); the limit is \(options.maximumQuestionCharacters)")
        }
        var input = AskInput(question: question)
        if let value = object["collection"] {
            guard let name = value as? String else { throw Problem(.invalidField, "collection: must be a string") }
            do { try CollectionName.validate(name) } catch { throw Problem(.invalidCollection, "collection: \(error)") }
            input.collection = name
        }
        if let value = object["images"] {
            guard let list = value as? [Any] else { throw Problem(.invalidField, "images: must be an array of digests") }
            guard list.count <= options.maximumImages else {
                throw Problem(.tooManyImages, "images: \(list.count) digests; the limit is \(options.maximumImages)")
            }
            input.images = try list.enumerated().map { i, element in
                guard let text = element as? String, let digest = parseDigest(text) else {
                    throw Problem(.invalidDigest, "images[\(i)]: must be a SHA-256 digest, 64 lowercase hex digits")
                }
                return digest
            }
        }
        guard input.collection != nil || !input.images.isEmpty else {
            throw Problem(.invalidField, "collection or images: give a collection, or at least one image digest, or both")
        }
        if let value = object["max_tokens"] {
            guard let number = integer(value), number >= 1, number <= Double(options.maximumAnswerTokens) else {
                throw Problem(.invalidField, "max_tokens: must be a whole number from 1 to \(options.maximumAnswerTokens)")
            }
            input.maxTokens = Int(number)
        } else {
            input.maxTokens = min(32, options.maximumAnswerTokens)
        }
        if let value = object["temperature"] {
            guard let number = real(value), number >= 0, number <= 1000 else {
                throw Problem(.invalidField, "temperature: must be a number from 0 (greedy) to 1000")
            }
            input.temperature = Float(number)
        }
        if let value = object["top_p"] {
            guard let number = real(value), number > 0, number <= 1 else {
                throw Problem(.invalidField, "top_p: must be a number in (0, 1]")
            }
            // Below Float's range it keeps the one most probable token, as any tiny mass does.
            input.topP = max(Float(number), .leastNonzeroMagnitude)
        }
        if let value = object["seed"] {
            guard let number = value as? NSNumber, !isBoolean(number), let seed = UInt64(exactly: number) else {
                throw Problem(.invalidField, "seed: must be a whole number from 0 to \(UInt64.max)")
            }
            input.seed = seed
        }
        return input
    }

    static func parseDigest(_ text: String) -> Digest? {
        guard text.utf8.count == 64, text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        return Digest(hex: text)
    }

    static func isBoolean(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }

    /// A JSON number that is a whole number (1 and 1.0 alike), as a Double.
    static func integer(_ value: Any) -> Double? {
        guard let number = real(value), number == number.rounded() else { return nil }
        return number
    }

    static func real(_ value: Any) -> Double? {
        guard let number = value as? NSNumber, !isBoolean(number), number.doubleValue.isFinite else { return nil }
        return number.doubleValue
    }

    // MARK: The store

    @Sendable func listCollections(_ request: Request, context: ServerContext) async throws -> Response {
        let store = self.store
        let list = try await offload { try store.read { try $0.collections() } }
        return try jsonResponse(CollectionList(collections: list.map { .init(name: $0.name, count: $0.count) }))
    }

    @Sendable func listMembers(_ request: Request, context: ServerContext) async throws -> Response {
        let collection = try IngestRoutes.collection(context)
        let query = request.uri.queryParameters
        var (offset, limit) = (0, Self.defaultPageSize)
        if let text = query.get("offset") {
            guard let value = Int(text), value >= 0, value <= 9_007_199_254_740_991 else {
                throw Problem(.invalidQuery, "offset must be a whole number from 0 to 9007199254740991")
            }
            offset = value
        }
        if let text = query.get("limit") {
            guard let value = Int(text), (1...Self.maximumPageSize).contains(value) else {
                throw Problem(.invalidQuery, "limit must be a whole number from 1 to \(Self.maximumPageSize)")
            }
            limit = value
        }
        let (store, pageOffset, pageLimit) = (self.store, offset, limit)
        let page: MemberPage? = try await offload {
            try store.read { reader in
                guard let summary = try reader.collection(named: collection) else { return nil }
                let members = try reader.members(of: collection, offset: pageOffset, limit: pageLimit)
                let entries = try members.map { member in
                    MemberPage.Member(ordinal: member.ordinal, digest: member.image.hex, names: try reader.image(member.image)?.sourceNames ?? [])
                }
                let end = pageOffset.addingReportingOverflow(entries.count)
                let next = !end.overflow && end.partialValue < summary.count && entries.count == pageLimit ? end.partialValue : nil
                return MemberPage(collection: collection, count: summary.count, offset: pageOffset, members: entries, next: next)
            }
        }
        guard let page else { throw Problem(.unknownCollection, "no collection \(collection.prefix(200)) in the store") }
        return try jsonResponse(page)
    }

    @Sendable func image(_ request: Request, context: ServerContext) async throws -> Response {
        let text = context.parameters.get("digest") ?? ""
        guard let digest = Self.parseDigest(text) else {
            throw Problem(.invalidDigest, "the digest in the path must be 64 lowercase hex digits (SHA-256 of the image's bytes)")
        }
        let (store, served) = (self.store, engine.fingerprint)
        let view: ImageView? = try await offload {
            try store.read { reader in
                guard let info = try reader.image(digest) else { return nil }
                var records: [ImageView.Record] = []
                for model in try reader.models() {
                    for codec in RecordCodec.allCases {
                        guard let summary = try reader.recordSummary(RecordKey(model: model.fingerprint, image: digest, codec: codec)) else { continue }
                        records.append(.init(model: model.fingerprint.hex, codec: codec.name, bytes: summary.storedBytes,
                                             rows: summary.header.tokens, servedModel: model.fingerprint == served))
                    }
                }
                return ImageView(digest: digest.hex, byteCount: info.byteCount, format: info.format, width: info.width, height: info.height,
                                 names: info.sourceNames, firstSeen: info.firstSeen, records: records)
            }
        }
        guard let view else { throw Problem(.unknownImage, "no image \(digest.hex) in the store") }
        return try jsonResponse(view)
    }
}

/// Hands the stream's iterator to the response body's writer (one reader at a time).
private final class IteratorBox: @unchecked Sendable {
    private var iterator: AsyncStream<QueryRoutes.StreamEvent>.Iterator

    init(_ iterator: AsyncStream<QueryRoutes.StreamEvent>.Iterator) { self.iterator = iterator }

    func next() async -> QueryRoutes.StreamEvent? { await iterator.next() }
}
