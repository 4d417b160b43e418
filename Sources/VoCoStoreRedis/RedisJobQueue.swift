import Foundation
import VoCoStore

// MARK: - The ingest queue on a stream

/// Jobs as entries of one stream read by the consumer group `workers`: a claim is XREADGROUP,
/// `done` is XACK, and a claim first takes back, with XAUTOCLAIM, the entries whose lease ended.
/// The lease lives in the pending entry's delivery time: claiming or renewing for L ms sets it
/// (XCLAIM ... TIME) to now + L - H, so the entry has been idle for H ms (`leaseHorizonMs`)
/// exactly when the lease ends, and XAUTOCLAIM with a min-idle-time of H takes back exactly the
/// entries whose own lease ended, whatever lease each claim asked for. A released job is set
/// idle for H at once. Each job's fields live in a hash beside the stream, counts per state in
/// another; all in the slot of `{name}`, and every call is one script, so each call is atomic.
/// The server's clock decides leases, so workers on hosts with other clocks agree.
final class RedisJobQueue: JobQueue, @unchecked Sendable {
    let client: RedisClient
    let readOnly: Bool
    /// The longest lease: 10^12 ms (31 years); longer ones are cut to it.
    static let leaseHorizonMs: Int64 = 1_000_000_000_000
    /// Jobs per enqueue script (each script is atomic; a bigger call is several).
    static let enqueueChunk = 1000

    init(client: RedisClient, readOnly: Bool) {
        self.client = client
        self.readOnly = readOnly
    }

    private var keys: RedisKeys { client.keys }

    private func script(_ operation: String, _ source: String, _ arguments: [RedisArgument]) throws -> RedisReply {
        guard !readOnly else { throw StoreError.readOnly(path: client.location) }
        let command = RedisCommand([Array("EVAL".utf8), Array(source.utf8), Array("2".utf8), Array(keys.jobStream.utf8), Array(keys.jobCounts.utf8),
                                    Array(keys.jobsPrefix.utf8)] + arguments.map(\.redisBytes))
        return try client.run(operation, key: keys.jobStream, command, replicate: true)
    }

    // MARK: Enqueue and claim

    func enqueue(_ jobs: [IngestJob]) throws -> [JobID] {
        for job in jobs { try CollectionName.validate(job.collection) }
        var ids: [JobID] = []
        for start in stride(from: 0, to: jobs.count, by: Self.enqueueChunk) {
            let chunk = jobs[start..<min(jobs.count, start + Self.enqueueChunk)]
            // The token makes a repeated call (after a lost reply) return the first call's ids.
            let token = UUID().uuidString
            let arguments: [RedisArgument] = [keys.enqueueToken(token)] + chunk.flatMap { job -> [RedisArgument] in
                [job.collection, keys.collectionJobs(job.collection), job.source, job.model.hex, job.attempts,
                 job.enqueuedAt, job.imageDigest?.hex ?? "", job.error ?? ""]
            }
            let reply = try script("enqueueing jobs", Self.enqueueScript, arguments)
            let made = (reply.elements ?? []).compactMap(\.text)
            guard made.count == chunk.count else { throw client.corrupt("jobs", keys.jobStream, "enqueue answered \(made.count) ids for \(chunk.count) jobs") }
            ids += made.map(JobID.init)
        }
        return ids
    }

    func claim(worker: String, limit: Int, lease: TimeInterval) throws -> [ClaimedJob] {
        guard limit > 0 else { return [] }
        let reply = try script("claiming jobs", Self.claimScript, [worker, min(limit, 10_000), Self.milliseconds(lease), Self.leaseHorizonMs])
        return try (reply.elements ?? []).map { entry in
            guard let parts = entry.elements, parts.count == 2, let id = parts[0].text else {
                throw client.corrupt("jobs", keys.jobStream, "claim answered \(entry)")
            }
            return ClaimedJob(id: JobID(id), job: try job(id: id, fields: parts[1]))
        }
    }

    func renew(_ ids: [JobID], worker: String, lease: TimeInterval) throws -> [JobID] {
        let (valid, invalid) = Self.split(ids)
        guard !valid.isEmpty else { return invalid }
        let reply = try script("renewing leases", Self.renewScript, [worker, Self.milliseconds(lease), Self.leaseHorizonMs] + valid.map(\.rawValue))
        return invalid + (reply.elements ?? []).compactMap(\.text).map(JobID.init)
    }

    func finish(_ outcomes: [JobOutcome], worker: String) throws -> [JobID] {
        let valid = outcomes.filter { Self.isStreamID($0.id.rawValue) }
        let invalid = outcomes.filter { !Self.isStreamID($0.id.rawValue) }.map(\.id)
        guard !valid.isEmpty else { return invalid }
        let arguments: [RedisArgument] = [worker] + valid.flatMap { outcome -> [RedisArgument] in
            [outcome.id.rawValue, outcome.state == .failed ? "failed" : "done", outcome.imageDigest?.hex ?? "",
             outcome.error == nil ? "0" : "1", outcome.error ?? ""]
        }
        let reply = try script("finishing jobs", Self.finishScript, arguments)
        return invalid + (reply.elements ?? []).compactMap(\.text).map(JobID.init)
    }

    func release(_ ids: [JobID], worker: String) throws {
        let (valid, _) = Self.split(ids)
        guard !valid.isEmpty else { return }
        _ = try script("releasing jobs", Self.releaseScript, [worker, Self.leaseHorizonMs] + valid.map(\.rawValue))
    }

    // MARK: Reads

    func job(_ id: JobID) throws -> IngestJob? {
        guard Self.isStreamID(id.rawValue) else { return nil }
        let key = keys.job(id.rawValue)
        let fields = try client.run("reading a job", key: key, RedisCommand("HGETALL", key))
        if fields.elements?.isEmpty ?? true { return nil }
        return try job(id: id.rawValue, fields: fields)
    }

    func jobs(collection: String?, after: JobID?, limit: Int) throws -> [(id: JobID, job: IngestJob)] {
        let stream = collection.map(keys.collectionJobs) ?? keys.jobStream
        var start = "-"
        if let after, Self.isStreamID(after.rawValue) { start = "(" + after.rawValue }
        var out: [(id: JobID, job: IngestJob)] = []
        while out.count < limit {
            let page = min(limit - out.count, 1000)
            let entries = try client.run("listing jobs", key: stream, RedisCommand("XRANGE", stream, start, "+", "COUNT", page)).elements ?? []
            let ids = entries.compactMap { $0.elements?.first?.text }
            let fields = try client.runAll("listing jobs", ids.map { (keys.job($0), RedisCommand("HGETALL", keys.job($0))) })
            for (id, reply) in zip(ids, fields) where !(reply.elements?.isEmpty ?? true) {
                out.append((JobID(id), try job(id: id, fields: reply)))
            }
            guard ids.count == page, let last = ids.last else { break }
            start = "(" + last
        }
        return out
    }

    func counts() throws -> JobCounts {
        let values = try client.run("counting jobs", key: keys.jobCounts, RedisCommand("HMGET", keys.jobCounts, "queued", "running", "done", "failed"))
            .elements?.map { Int($0.integer ?? 0) } ?? []
        var counts = JobCounts()
        if values.count == 4 { (counts.queued, counts.running, counts.done, counts.failed) = (values[0], values[1], values[2], values[3]) }
        return counts
    }

    // MARK: Helpers

    /// A job hash (HGETALL's flat field/value list) as an `IngestJob`.
    func job(id: String, fields reply: RedisReply) throws -> IngestJob {
        let flat = reply.elements ?? []
        var f: [String: String] = [:]
        for i in stride(from: 0, to: flat.count - 1, by: 2) { f[flat[i].text ?? ""] = flat[i + 1].text }
        guard let collection = f["collection"], let source = f["source"], let model = f["model"].flatMap(Digest.init(hex:)),
              let state = f["state"].flatMap(IngestJob.State.init(rawValue:)), let attempts = f["attempts"].flatMap(Int.init),
              let enqueuedAt = f["enqueuedAt"] else {
            throw client.corrupt("jobs", keys.job(id), "a job hash needs collection, source, model, state, attempts and enqueuedAt")
        }
        var job = IngestJob(collection: collection, source: source, model: model, state: state, attempts: attempts,
                            imageDigest: f["imageDigest"].flatMap(Digest.init(hex:)), error: f["error"], enqueuedAt: enqueuedAt)
        job.updatedAt = f["updatedMs"].flatMap(Int64.init).map(Self.iso) ?? enqueuedAt
        job.worker = f["worker"]
        job.leaseUntil = f["leaseUntilMs"].flatMap(Int64.init).map(Self.iso)
        return job
    }

    static func iso(_ milliseconds: Int64) -> String { Date(timeIntervalSince1970: Double(milliseconds) / 1000).ISO8601Format() }

    static func milliseconds(_ lease: TimeInterval) -> Int64 {
        guard lease.isFinite, lease > 0 else { return 0 }
        return Int64(min(lease * 1000, Double(leaseHorizonMs)))
    }

    /// `<ms>-<seq>`: what XADD makes. Anything else names no job.
    static func isStreamID(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.count <= 20 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) && UInt64($0) != nil }
    }

    private static func split(_ ids: [JobID]) -> (valid: [JobID], invalid: [JobID]) {
        (ids.filter { isStreamID($0.rawValue) }, ids.filter { !isStreamID($0.rawValue) })
    }
}
