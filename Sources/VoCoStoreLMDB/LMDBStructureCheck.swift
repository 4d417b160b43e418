import CLMDB
import Foundation
import VoCoStore

// MARK: - What only LMDB can check

/// Compares LMDB's own entry count of every database with what a walk finds (a damaged branch
/// page can hide entries from a walk), and the `members` and job indexes with what they index.
struct LMDBStructureCheck {
    let txn: Transaction
    let db: LMDBStore.Databases

    func run() throws -> [VerifyFailure] {
        var failures: [VerifyFailure] = []
        let named: [(String, MDB_dbi)] = [
            ("records", db.records), ("images", db.images), ("collections", db.collections), ("members", db.members),
            ("models", db.models), ("jobs", db.jobs), ("job_queue", db.jobQueue), ("job_leases", db.jobLeases),
            ("job_collections", db.jobCollections), ("meta", db.meta),
        ]
        for (name, dbi) in named {
            var walked = 0
            try txn.scan(dbi) { _, _ in walked += 1; return true }
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

    /// Queued and leased ids name existing jobs in that state; every job parses.
    private func jobIndexes() throws -> [VerifyFailure] {
        var failures: [VerifyFailure] = []
        var states: [UInt64: IngestJob.State] = [:]
        try txn.scan(db.jobs) { k, v in
            guard k.count == 8, let job = try? JSONDecoder().decode(IngestJob.self, from: Data(v)) else {
                failures.append(VerifyFailure(database: "jobs", key: Digest.hexString(k), reason: "not id -> ingest job"))
                return true
            }
            states[readBigEndian(k)] = job.state
            return true
        }
        try txn.scan(db.jobQueue) { k, _ in
            let id = k.count == 8 ? readBigEndian(k) : 0
            if states[id] != .queued {
                failures.append(VerifyFailure(database: "job_queue", key: Digest.hexString(k), reason: "queues a job that is not queued"))
            }
            return true
        }
        try txn.scan(db.jobLeases) { k, _ in
            let id = k.count == 16 ? readBigEndian(UnsafeRawBufferPointer(rebasing: k[8..<16])) : 0
            if states[id] != .running {
                failures.append(VerifyFailure(database: "job_leases", key: Digest.hexString(k), reason: "leases a job that is not running"))
            }
            return true
        }
        return failures
    }
}
