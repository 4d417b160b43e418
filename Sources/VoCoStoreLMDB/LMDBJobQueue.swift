import CLMDB
import Foundation
import VoCoStore

// MARK: - The ingest queue in LMDB

/// Jobs in four databases, all changed in one write transaction per call:
/// - `jobs`: id (UInt64 big-endian, from 1, in enqueue order) -> JSON `IngestJob`
/// - `job_queue`: id -> empty, for every `queued` job (claims take the smallest ids)
/// - `job_leases`: lease end (ms since 1970, UInt64 BE) + id -> worker, for every `running` job
/// - `job_collections`: collection name + 0x00 + id -> empty (a collection's jobs)
/// and two counters in `meta` (`jobs_done`, `jobs_failed`), so that counting is free.
final class LMDBJobQueue: JobQueue, @unchecked Sendable {
    let access: LMDBAccess
    var db: LMDBStore.Databases { access.db }

    init(access: LMDBAccess) {
        self.access = access
    }

    var path: String { access.path }

    // MARK: Enqueue and claim

    func enqueue(_ jobs: [IngestJob]) throws -> [JobID] {
        for job in jobs { try CollectionName.validate(job.collection) }
        return try access.write { txn in
            let last = try txn.lastKey(db.jobs, prefix: []).map { k in k.withUnsafeBytes { readBigEndian($0) } } ?? 0
            guard last < UInt64.max - UInt64(jobs.count) else {
                throw StoreError.corruptEntry(path: path, database: "jobs", key: String(last), reason: "the last job id leaves no room for new ones")
            }
            var next = last + 1
            return try jobs.map { job in
                var job = job
                job.state = .queued
                (job.worker, job.leaseUntil) = (nil, nil)
                let id = next
                next += 1
                try put(txn, id, job)
                try txn.put(db.jobQueue, bigEndianBytes(id), [])
                try txn.put(db.jobCollections, CollectionKeys.prefix(job.collection) + bigEndianBytes(id), [])
                return JobID(String(id))
            }
        }
    }

    func claim(worker: String, limit: Int, lease: TimeInterval) throws -> [ClaimedJob] {
        guard limit > 0 else { return [] }
        let now = Self.milliseconds(Date())
        let until = Date().addingTimeInterval(lease)
        return try access.write { txn in
            var ids: [UInt64] = []
            // Running jobs whose lease ended (their worker died), oldest lease first.
            for key in try txn.keys(db.jobLeases) where ids.count < limit {
                guard key.count == 16 else { continue }
                let end = key.withUnsafeBytes { readBigEndian(UnsafeRawBufferPointer(rebasing: $0[0..<8])) }
                guard end <= now else { break }
                try txn.delete(db.jobLeases, key)
                ids.append(key.withUnsafeBytes { readBigEndian(UnsafeRawBufferPointer(rebasing: $0[8..<16])) })
            }
            // Then queued jobs in id order.
            for key in try txn.keys(db.jobQueue) where ids.count < limit {
                try txn.delete(db.jobQueue, key)
                ids.append(key.withUnsafeBytes { readBigEndian($0) })
            }
            return try ids.compactMap { id -> ClaimedJob? in
                guard var job = try get(txn, id) else { return nil }
                job.state = .running
                job.attempts += 1
                job.worker = worker
                job.leaseUntil = until.ISO8601Format()
                try put(txn, id, job)
                try txn.put(db.jobLeases, Self.leaseKey(until, id), Array(worker.utf8))
                return ClaimedJob(id: JobID(String(id)), job: job)
            }
        }
    }

    func renew(_ ids: [JobID], worker: String, lease: TimeInterval) throws -> [JobID] {
        let until = Date().addingTimeInterval(lease)
        return try access.write { txn in
            var lost: [JobID] = []
            for jobID in ids {
                guard let id = UInt64(jobID.rawValue), var job = try get(txn, id), job.state == .running, job.worker == worker else {
                    lost.append(jobID)
                    continue
                }
                try dropLease(txn, id)
                job.leaseUntil = until.ISO8601Format()
                try put(txn, id, job)
                try txn.put(db.jobLeases, Self.leaseKey(until, id), Array(worker.utf8))
            }
            return lost
        }
    }

    func finish(_ outcomes: [JobOutcome], worker: String) throws -> [JobID] {
        try access.write { txn in
            var notHeld: [JobID] = []
            var done = 0, failed = 0
            for outcome in outcomes {
                guard let id = UInt64(outcome.id.rawValue), var job = try get(txn, id), job.state == .running, job.worker == worker else {
                    notHeld.append(outcome.id)
                    continue
                }
                try dropLease(txn, id)
                job.state = outcome.state == .failed ? .failed : .done
                if job.state == .done { done += 1 } else { failed += 1 }
                job.imageDigest = outcome.imageDigest ?? job.imageDigest
                job.error = outcome.error
                (job.worker, job.leaseUntil) = (nil, nil)
                try put(txn, id, job)
            }
            try addToCounter(txn, "jobs_done", done)
            try addToCounter(txn, "jobs_failed", failed)
            return notHeld
        }
    }

    func release(_ ids: [JobID], worker: String) throws {
        try access.write { txn in
            for jobID in ids {
                guard let id = UInt64(jobID.rawValue), var job = try get(txn, id), job.state == .running, job.worker == worker else { continue }
                try dropLease(txn, id)
                job.state = .queued
                (job.worker, job.leaseUntil) = (nil, nil)
                try put(txn, id, job)
                try txn.put(db.jobQueue, bigEndianBytes(id), [])
            }
        }
    }

    // MARK: Reads

    func job(_ id: JobID) throws -> IngestJob? {
        guard let n = UInt64(id.rawValue) else { return nil }
        return try access.read { try get($0, n) }
    }

    func jobs(collection: String?, after: JobID?, limit: Int) throws -> [(id: JobID, job: IngestJob)] {
        guard limit > 0 else { return [] }
        let start = after.flatMap { UInt64($0.rawValue) }.map { $0 &+ 1 } ?? 1
        return try access.read { txn in
            var out: [(id: JobID, job: IngestJob)] = []
            if let collection {
                let prefix = CollectionKeys.prefix(collection)
                try txn.scan(db.jobCollections, prefix: prefix, from: prefix + bigEndianBytes(start)) { k, _ in
                    guard k.count == prefix.count + 8 else {
                        throw StoreError.corruptEntry(path: path, database: "job_collections", key: Digest.hexString(k), reason: "not name + 0 + job id")
                    }
                    let id = readBigEndian(UnsafeRawBufferPointer(rebasing: k[(k.count - 8)...]))
                    if let job = try get(txn, id) { out.append((JobID(String(id)), job)) }
                    return out.count < limit
                }
            } else {
                try txn.scan(db.jobs, prefix: [], from: bigEndianBytes(start)) { k, v in
                    out.append((JobID(String(readBigEndian(k))), try decode(k, v)))
                    return out.count < limit
                }
            }
            return out
        }
    }

    func counts() throws -> JobCounts {
        try access.read { txn in
            var counts = JobCounts()
            counts.queued = try txn.count(db.jobQueue)
            counts.running = try txn.count(db.jobLeases)
            counts.done = try counter(txn, "jobs_done")
            counts.failed = try counter(txn, "jobs_failed")
            return counts
        }
    }

    // MARK: Helpers

    static func milliseconds(_ date: Date) -> UInt64 { UInt64(max(0, date.timeIntervalSince1970 * 1000)) }
    static func leaseKey(_ until: Date, _ id: UInt64) -> [UInt8] { bigEndianBytes(milliseconds(until)) + bigEndianBytes(id) }

    private func get(_ txn: any LMDBKeyValueReads, _ id: UInt64) throws -> IngestJob? {
        let key = bigEndianBytes(id)
        return try txn.withValue(db.jobs, key) { raw in try raw.map { raw in try key.withUnsafeBytes { try decode($0, raw) } } }
    }

    private func decode(_ key: UnsafeRawBufferPointer, _ raw: UnsafeRawBufferPointer) throws -> IngestJob {
        let json = try db.open(raw, key: key, database: "jobs", path: path)
        do { return try JSONDecoder().decode(IngestJob.self, from: Data(json)) } catch {
            throw StoreError.corruptEntry(path: path, database: "jobs", key: Digest.hexString(key), reason: "not an ingest job: \(error)")
        }
    }

    private func put(_ txn: Transaction, _ id: UInt64, _ job: IngestJob) throws {
        var job = job
        job.updatedAt = Date().ISO8601Format()
        try txn.putSealed(db.jobs, bigEndianBytes(id), try JSONEncoder.sortedKeys.encode(job))
    }

    /// Removes the lease entry of job `id` (running jobs are few: a scan is cheap).
    private func dropLease(_ txn: Transaction, _ id: UInt64) throws {
        let idBytes = bigEndianBytes(id)
        for key in try txn.keys(db.jobLeases, where: { k, _ in k.count == 16 && k[8..<16].elementsEqual(idBytes) }) {
            try txn.delete(db.jobLeases, key)
        }
    }

    private func counter(_ txn: any LMDBKeyValueReads, _ name: String) throws -> Int {
        let key = Array(name.utf8)
        return try txn.withValue(db.meta, key) { raw in
            guard let raw else { return 0 }
            let text = try key.withUnsafeBytes { try db.open(raw, key: $0, database: "meta", path: path) }
            guard let count = Int(String(decoding: text, as: UTF8.self)), count >= 0 else {
                throw StoreError.corruptEntry(path: path, database: "meta", key: name, reason: "not a count")
            }
            return count
        }
    }

    private func addToCounter(_ txn: Transaction, _ name: String, _ amount: Int) throws {
        guard amount != 0 else { return }
        try txn.putSealed(db.meta, Array(name.utf8), Data(String(try counter(txn, name) &+ amount).utf8))
    }
}
