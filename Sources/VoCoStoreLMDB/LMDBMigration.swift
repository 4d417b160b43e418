import CLMDB
import Foundation
import VoCoStore

// MARK: - Schema 1 -> 2

/// Version 2 adds the `members` index (so that adding an image to a collection does not scan
/// the collection) and the job queue's `job_queue`, `job_leases` and `job_collections` indexes
/// (claims with leases). The upgrade is one write transaction: it happens whole or not at all.
enum LMDBMigration {
    static func upgradeFromVersion1(_ environment: LMDBEnvironment) throws {
        try environment.write { txn in
            func open(_ name: String) throws -> MDB_dbi {
                var dbi = MDB_dbi()
                try check(mdb_dbi_open(txn.txn, name, UInt32(MDB_CREATE), &dbi), path: environment.path, "mdb_dbi_open(\(name))")
                return dbi
            }
            let meta = try open("meta")
            // Another process may have upgraded it meanwhile.
            guard try txn.get(meta, Array("schema_version".utf8)).map({ String(decoding: $0, as: UTF8.self) }) == "1" else { return }
            let collections = try open("collections"), members = try open("members"), jobs = try open("jobs")
            let queue = try open("job_queue"), byCollection = try open("job_collections")
            _ = try open("job_leases")

            var entries: [(key: [UInt8], digest: [UInt8])] = []
            try txn.scan(collections) { k, v in
                entries.append((Array(k), Array(v)))
                return true
            }
            for (key, digest) in entries {
                guard key.count >= 10, key[key.count - 9] == 0, digest.count == 32 else { continue }  // verify reports it
                try txn.put(members, Array(key[0..<(key.count - 8)]) + digest, Array(key[(key.count - 8)...]))
            }

            var rewritten: [(key: [UInt8], job: IngestJob)] = []
            var done = 0, failed = 0
            try txn.scan(jobs) { k, v in
                guard k.count == 8, var job = try? JSONDecoder().decode(IngestJob.self, from: Data(v)) else { return true }
                switch job.state {
                case .queued, .running:  // a version-1 `running` job was left by a crashed ingest: queue it again
                    job.state = .queued
                    rewritten.append((Array(k), job))
                case .done: done += 1
                case .failed: failed += 1
                }
                return true
            }
            for (key, job) in rewritten {
                try txn.put(jobs, key, Array(try JSONEncoder.sortedKeys.encode(job)))
                try txn.put(queue, key, [])
            }
            var jobKeys: [[UInt8]] = []
            try txn.scan(jobs) { k, v in
                if k.count == 8, let job = try? JSONDecoder().decode(IngestJob.self, from: Data(v)) {
                    jobKeys.append(CollectionKeys.prefix(job.collection) + Array(k))
                }
                return true
            }
            for key in jobKeys { try txn.put(byCollection, key, []) }
            try txn.put(meta, Array("jobs_done".utf8), Array(String(done).utf8))
            try txn.put(meta, Array("jobs_failed".utf8), Array(String(failed).utf8))
            try txn.put(meta, Array("schema_version".utf8), Array("2".utf8))
        }
    }

    // MARK: - Schema 2 -> 3

    /// Version 3 seals the values nothing else checks: every value of `images`, `models` and
    /// `jobs`, and every `meta` value but `schema_version`, gains its CRC-32C (`ValueSeal`).
    /// One write transaction, like the upgrade from 1.
    static func upgradeFromVersion2(_ environment: LMDBEnvironment) throws {
        try environment.write { txn in
            func open(_ name: String) throws -> MDB_dbi {
                var dbi = MDB_dbi()
                try check(mdb_dbi_open(txn.txn, name, 0, &dbi), path: environment.path, "mdb_dbi_open(\(name))")
                return dbi
            }
            let meta = try open("meta")
            guard try txn.get(meta, Array("schema_version".utf8)).map({ String(decoding: $0, as: UTF8.self) }) == "2" else { return }
            for dbi in [try open("images"), try open("models"), try open("jobs"), meta] {
                var entries: [(key: [UInt8], value: [UInt8])] = []
                try txn.scan(dbi) { k, v in
                    if !(dbi == meta && k.elementsEqual("schema_version".utf8)) { entries.append((Array(k), Array(v))) }
                    return true
                }
                for (key, value) in entries { try txn.put(dbi, key, ValueSeal.seal(value, key: key)) }
            }
            try txn.put(meta, Array("schema_version".utf8), Array("3".utf8))
        }
    }
}
