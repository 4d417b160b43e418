import CLMDB
import Foundation
import VoCoStore

// MARK: - What only this backend can check

/// Compares LMDB's own entry count of every database with what a walk finds (a damaged branch
/// page can hide entries from a walk), checks every sealed value's checksum, and the `members`
/// and job indexes against what they index.
struct LMDBStructureCheck {
    let txn: any LMDBKeyValueReads
    let db: LMDBStore.Databases

    func run() throws -> [VerifyFailure] {
        var failures: [VerifyFailure] = []
        let named: [(String, MDB_dbi)] = [
            ("records", db.records), ("images", db.images), ("collections", db.collections), ("members", db.members),
            ("models", db.models), ("jobs", db.jobs), ("job_queue", db.jobQueue), ("job_leases", db.jobLeases),
            ("job_collections", db.jobCollections), ("meta", db.meta),
        ]
        let sealed: Set<MDB_dbi> = db.sealed ? [db.images, db.models, db.jobs, db.meta] : []
        for (name, dbi) in named {
            var walked = 0
            try txn.scan(dbi) { k, v in
                walked += 1
                if sealed.contains(dbi), !(dbi == db.meta && k.elementsEqual("schema_version".utf8)),
                   case let .failure(problem) = ValueSeal.open(v, key: k) {
                    failures.append(VerifyFailure(database: name, key: Digest.hexString(k), reason: problem.reason))
                }
                return true
            }
            let counted = try txn.count(dbi)
            if walked != counted {
                failures.append(VerifyFailure(database: name, key: "-", reason: "LMDB counts \(counted) entries but a walk of the database finds \(walked): its B-tree is damaged"))
            }
        }
        failures += try membersIndex()
        failures += try jobIndexes()
        return failures
    }

    /// Every `collections` entry has its `members` entry with the same ordinal, and the reverse.
    private func membersIndex() throws -> [VerifyFailure] {
        var failures: [VerifyFailure] = []
        var expected: [[UInt8]: [UInt8]] = [:]  // members key -> ordinal bytes
        try txn.scan(db.collections) { k, v in
            guard k.count >= 10, k[k.count - 9] == 0, v.count == 32 else { return true }  // verify reports these
            expected[Array(k[0..<(k.count - 8)]) + Array(v)] = Array(k[(k.count - 8)...])
            return true
        }
        try txn.scan(db.members) { k, v in
            let key = Array(k)
            if let ordinal = expected.removeValue(forKey: key) {
                if !ordinal.elementsEqual(v) {
                    failures.append(VerifyFailure(database: "members", key: Digest.hexString(k), reason: "the index gives another ordinal than the collection entry"))
                }
            } else {
                failures.append(VerifyFailure(database: "members", key: Digest.hexString(k), reason: "an index entry without its collection entry"))
            }
            return true
        }
        for key in expected.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            failures.append(VerifyFailure(database: "members", key: key.withUnsafeBytes { Digest.hexString($0) }, reason: "a collection entry without its index entry"))
        }
        return failures
    }

    /// Queued and leased ids name existing jobs in that state (leases by their worker, until
    /// their lease end), and every job is indexed under its collection and nothing else is.
    private func jobIndexes() throws -> [VerifyFailure] {
        var failures: [VerifyFailure] = []
        func fail(_ database: String, _ key: UnsafeRawBufferPointer, _ reason: String) {
            failures.append(VerifyFailure(database: database, key: Digest.hexString(key), reason: reason))
        }
        var jobs: [UInt64: IngestJob] = [:]
        try txn.scan(db.jobs) { k, v in
            let json = db.sealed ? try? ValueSeal.open(v, key: k).get() : v
            guard let json else { return true }  // its checksum failure is reported by run()
            guard k.count == 8, let job = try? JSONDecoder().decode(IngestJob.self, from: Data(json)) else {
                fail("jobs", k, "not id -> ingest job")
                return true
            }
            jobs[readBigEndian(k)] = job
            return true
        }
        var indexed = Set<UInt64>()
        try txn.scan(db.jobQueue) { k, _ in
            if k.count != 8 || jobs[readBigEndian(k)]?.state != .queued { fail("job_queue", k, "queues a job that is not queued") } else { indexed.insert(readBigEndian(k)) }
            return true
        }
        for (id, job) in jobs where job.state == .queued && !indexed.contains(id) {
            failures.append(VerifyFailure(database: "job_queue", key: String(id), reason: "queued job \(id) is not in the queue"))
        }
        indexed = []
        let iso = ISO8601DateFormatter()
        try txn.scan(db.jobLeases) { k, v in
            guard k.count == 16 else {
                fail("job_leases", k, "not lease end + job id")
                return true
            }
            let id = readBigEndian(UnsafeRawBufferPointer(rebasing: k[8..<16]))
            let end = Double(readBigEndian(UnsafeRawBufferPointer(rebasing: k[0..<8]))) / 1000
            guard let job = jobs[id], job.state == .running else {
                fail("job_leases", k, "leases a job that is not running")
                return true
            }
            if job.worker.map({ !v.elementsEqual($0.utf8) }) ?? true { fail("job_leases", k, "names another worker than its job") }
            let until = job.leaseUntil.flatMap { iso.date(from: $0) }?.timeIntervalSince1970
            if until.map({ abs($0 - end) >= 1 }) ?? true { fail("job_leases", k, "ends at another time than its job's lease") }
            indexed.insert(id)
            return true
        }
        for (id, job) in jobs where job.state == .running && !indexed.contains(id) {
            failures.append(VerifyFailure(database: "job_leases", key: String(id), reason: "running job \(id) has no lease entry"))
        }
        indexed = []
        try txn.scan(db.jobCollections) { k, _ in
            let id = k.count >= 10 ? readBigEndian(UnsafeRawBufferPointer(rebasing: k[(k.count - 8)...])) : 0
            guard k.count >= 10, k[k.count - 9] == 0, let job = jobs[id],
                  k[0..<(k.count - 9)].elementsEqual(job.collection.utf8) else {
                fail("job_collections", k, "indexes a job that is not in this collection")
                return true
            }
            indexed.insert(id)
            return true
        }
        for id in Set(jobs.keys).subtracting(indexed).sorted() {
            failures.append(VerifyFailure(database: "job_collections", key: String(id), reason: "job \(id) is not indexed under its collection"))
        }
        return failures
    }
}
