import Foundation
import Hummingbird
import NIOCore
import VoCoImage
import VoCoStore

// MARK: - The ingest API (Schemas/ingest-api.json)

extension ProblemType {
    public static let queueFull = ProblemType("queue-full", .serviceUnavailable, "The ingest queue is full; retry later")
    public static let invalidCollection = ProblemType("invalid-collection", .badRequest, "The collection name is not valid")
    public static let notAnImage = ProblemType("not-an-image", .unsupportedMediaType, "The file is not a JPEG or PNG image")
    public static let emptyUpload = ProblemType("empty-upload", .badRequest, "The upload holds no file")
    public static let jobNotFound = ProblemType("job-not-found", .notFound, "No such job")
    public static let invalidQuery = ProblemType("invalid-query", .badRequest, "A query parameter is not valid")
    public static let insufficientStorage = ProblemType("insufficient-storage", .init(code: 507, reasonPhrase: "Insufficient Storage"), "The server has no room to keep the upload")

    public static let ingest: [ProblemType] = [queueFull, invalidCollection, notAnImage, emptyUpload, jobNotFound, invalidQuery, insufficientStorage]
}

/// 202's body: where the upload went and how to follow it.
struct UploadAccepted: Codable, Sendable {
    var job: String
    var digest: String
    var collection: String
    var state: String
    /// The job's status URL path.
    var status: String
}

/// A job as the API shows it.
struct JobView: Codable, Sendable {
    var id: String
    var collection: String
    /// The name the image is recorded under (the uploaded file's name or the spool path).
    var name: String
    var state: String
    var attempts: Int
    var digest: String?
    var error: String?
    var enqueuedAt: String
    var updatedAt: String
}

struct JobPage: Codable, Sendable {
    var collection: String
    var jobs: [JobView]
    /// Pass as `after` for the next page; absent on the last page.
    var next: String?
}

struct IngestRoutes: Sendable {
    let intake: IngestIntake
    let metrics: IngestMetrics
    let maximumBodyBytes: Int
    /// How long a client told "queue full" should wait.
    static let retryAfterSeconds = 5
    static let maximumPageSize = 1000

    func add(to router: Router<ServerContext>) {
        router.post("/v1/collections/:collection/images", use: upload)
        router.get("/v1/collections/:collection/jobs", use: listJobs)
        router.get("/v1/jobs/:id", use: job)
    }

    // MARK: Upload

    @Sendable func upload(_ request: Request, context: ServerContext) async throws -> Response {
        let collection = try Self.collection(context)
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maximumBodyBytes {
            throw Problem(.bodyTooLarge, "the body is \(length) bytes; the limit is \(maximumBodyBytes)")
        }
        let intake = self.intake
        if try await offload({ try intake.isFull() }) {
            metrics.uploadsRejectedQueueFull.increment()
            throw Problem(.queueFull, "\(intake.maximumQueue) jobs are waiting or running; retry after \(Self.retryAfterSeconds) s",
                          headers: [.retryAfter: String(Self.retryAfterSeconds)])
        }
        var (bytes, name) = (try await body(request), request.uri.queryParameters.get("name"))
        if let type = request.headers[.contentType], let boundary = MultipartForm.boundary(contentType: type) {
            let form: MultipartForm
            do { form = try MultipartForm(body: bytes, boundary: boundary) } catch { throw Problem(.badRequest, "\(error)") }
            guard let file = form.file else { throw Problem(.emptyUpload, "the form has no part named 'file' and no part with a file name") }
            (bytes, name) = (Array(file.body), file.filename ?? name)
        }
        guard !bytes.isEmpty else { throw Problem(.emptyUpload, "the body is empty; send the image's bytes (raw, or as a form's 'file' part)") }
        guard bytes.withUnsafeBytes({ ImageFormat.detect($0) }) != nil else {
            throw Problem(.notAnImage, "the content starts with \(bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")); only JPEG and PNG are taken, whatever the name or type says")
        }
        let digest = Digest.sha256(bytes)
        let job: JobID
        do {
            job = try await offload { [bytes, name] in
                try intake.enqueue(try intake.folders.storeUpload(bytes, name: name), collection: collection)
            }
        } catch IngestFileError.diskFull {
            throw Problem(.insufficientStorage, "no space left to keep the upload; nothing was queued")
        }
        metrics.uploadsAccepted.increment()
        let accepted = UploadAccepted(job: job.rawValue, digest: digest.hex, collection: collection, state: "queued", status: "/v1/jobs/\(job.rawValue)")
        return try jsonResponse(accepted, status: .accepted, headers: [.location: accepted.status])
    }

    /// The whole body, refused past the limit.
    private func body(_ request: Request) async throws -> [UInt8] {
        try await collectBody(request, limit: maximumBodyBytes)
    }

    // MARK: Jobs

    @Sendable func job(_ request: Request, context: ServerContext) async throws -> Response {
        let text = context.parameters.get("id") ?? ""
        let id = JobID(text.removingPercentEncoding ?? text)
        let (intake, folders) = (self.intake, intake.folders)
        guard let job = try await offload({ try intake.queue.job(id) }) else {
            throw Problem(.jobNotFound, "no job \(id.rawValue.prefix(100)) in the store's queue")
        }
        return try jsonResponse(Self.view(id, job, folders))
    }

    @Sendable func listJobs(_ request: Request, context: ServerContext) async throws -> Response {
        let collection = try Self.collection(context)
        let query = request.uri.queryParameters
        var limit = 100
        if let text = query.get("limit") {
            guard let value = Int(text), (1...Self.maximumPageSize).contains(value) else {
                throw Problem(.invalidQuery, "limit must be a whole number from 1 to \(Self.maximumPageSize)")
            }
            limit = value
        }
        let (after, pageSize) = (query.get("after").map(JobID.init), limit)
        let (intake, folders) = (self.intake, intake.folders)
        let jobs = try await offload { try intake.queue.jobs(collection: collection, after: after, limit: pageSize) }
        let page = JobPage(collection: collection, jobs: jobs.map { Self.view($0.id, $0.job, folders) },
                           next: jobs.count == limit ? jobs.last?.id.rawValue : nil)
        return try jsonResponse(page)
    }

    // MARK: Helpers

    static func collection(_ context: ServerContext) throws -> String {
        let raw = context.parameters.get("collection") ?? ""
        guard let name = raw.removingPercentEncoding else {
            throw Problem(.invalidCollection, "the collection in the path is not valid percent-encoded UTF-8")
        }
        do { try CollectionName.validate(name) } catch { throw Problem(.invalidCollection, "\(error)") }
        return name
    }

    static func view(_ id: JobID, _ job: IngestJob, _ folders: IngestFolders) -> JobView {
        JobView(id: id.rawValue, collection: job.collection, name: folders.displayName(source: job.source), state: job.state.rawValue,
                attempts: job.attempts, digest: job.imageDigest?.hex, error: job.error, enqueuedAt: job.enqueuedAt, updatedAt: job.updatedAt)
    }
}
