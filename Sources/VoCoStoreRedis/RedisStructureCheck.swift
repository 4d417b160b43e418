import Foundation
import VoCoStore

// MARK: - What only the Redis backend can check

/// The job queue against itself (every stream entry has its job hash, the counts hash matches the
/// jobs' states, every running job is pending in the group under its worker and every pending
/// entry is a running or released job) and every collection's members against its name key.
struct RedisStructureCheck {
    let client: RedisClient
    private var keys: RedisKeys { client.keys }

    init(client: RedisClient) { self.client = client }

    func run() throws -> [VerifyFailure] {
        try jobQueue() + collectionNames()
    }

    private func jobQueue() throws -> [VerifyFailure] {
        var failures: [VerifyFailure] = []
        let queue = RedisJobQueue(client: client, readOnly: true)
        var states: [String: (state: IngestJob.State, worker: String?)] = [:]
        var tally = JobCounts()
        var start = "-"
        while true {
            let entries = try client.run("checking the job queue", key: keys.jobStream, RedisCommand("XRANGE", keys.jobStream, start, "+", "COUNT", 1000)).elements ?? []
            let ids = entries.compactMap { $0.elements?.first?.text }
            let hashes = try client.runAll("checking the job queue", ids.map { (keys.job($0), RedisCommand("HGETALL", keys.job($0))) })
            for (id, reply) in zip(ids, hashes) {
                guard let job = try? queue.job(id: id, fields: reply) else {
                    failures.append(VerifyFailure(database: "jobs", key: keys.job(id), reason: "the stream entry's job hash is missing or does not parse"))
                    continue
                }
                states[id] = (job.state, job.worker)
                switch job.state {
                case .queued: tally.queued += 1
                case .running: tally.running += 1
                case .done: tally.done += 1
                case .failed: tally.failed += 1
                }
            }
            guard ids.count == 1000, let last = ids.last else { break }
            start = "(" + last
        }
        let counted = try queue.counts()
        if counted != tally {
            failures.append(VerifyFailure(database: "jobs", key: keys.jobCounts,
                                          reason: "the counts say \(counted.queued)/\(counted.running)/\(counted.done)/\(counted.failed) queued/running/done/failed, the jobs \(tally.queued)/\(tally.running)/\(tally.done)/\(tally.failed)"))
        }
        var pending: [String: String] = [:]  // id -> consumer
        start = "-"
        while true {
            let reply = try client.run("checking the job queue", key: keys.jobStream,
                                       RedisCommand("XPENDING", keys.jobStream, RedisKeys.consumerGroup, start, "+", 1000))
            let entries = (reply.elements ?? []).compactMap { $0.elements }
            for e in entries where e.count >= 2 { if let id = e[0].text { pending[id] = e[1].text ?? "" } }
            guard entries.count == 1000, let last = entries.last?.first?.text else { break }
            start = "(" + last
        }
        for (id, entry) in states.sorted(by: { JobID($0.key) < JobID($1.key) }) where entry.state == .running {
            if pending[id] != entry.worker {
                failures.append(VerifyFailure(database: "jobs", key: keys.job(id), reason: "a running job that is not pending in the group under its worker \(entry.worker ?? "?")"))
            }
        }
        for id in pending.keys.sorted(by: { JobID($0) < JobID($1) }) {
            let state = states[id]?.state
            if state != .running && state != .queued {
                failures.append(VerifyFailure(database: "jobs", key: keys.job(id), reason: "pending in the group but \(state?.rawValue ?? "not a job")"))
            }
        }
        return failures
    }

    /// A members set whose name key is missing is a collection no listing shows.
    private func collectionNames() throws -> [VerifyFailure] {
        let members = try client.scan("checking collections", matching: "\(keys.name):col:{*}:members")
        let nameKeys = members.map { Array($0.dropLast(":members".utf8.count)) + Array(":name".utf8) }
        let exists = try client.runAll("checking collections", slots: nameKeys.map { (HashSlot.of($0), RedisCommand([Array("EXISTS".utf8), $0])) })
        return zip(members, exists).compactMap { key, reply in
            reply.integer == 1 ? nil : VerifyFailure(database: "collections", key: String(decoding: key, as: UTF8.self), reason: "a collection's members without its name key")
        }
    }
}
