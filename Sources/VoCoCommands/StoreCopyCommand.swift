import ArgumentParser
import Foundation
import VoCoStore

/// `voco store ...`: whole-store operations.
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Whole-store operations: copy a store to another backend.",
        subcommands: [StoreCopyCommand.self]
    )
}

/// `voco store copy SRC DST`: every model, image entry, record, collection and pending job of
/// one store into a new one, on any backend (an LMDB directory, a redis:// URL), each batch read
/// back from DST and checked before the next.
struct StoreCopyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy a store into a new or empty one (LMDB directory <-> redis:// URL) and verify what was copied.",
        discussion: """
            DST gets SRC's codec. Order: models, image entries, records, collections, pending jobs; \
            so a copy that stops half-way leaves only records no collection refers to (gc removes \
            them). Every record is verified (checksum, model) as it is read from SRC, and read \
            back from DST, verified again and compared byte for byte; collections are compared \
            member by member. Finished jobs are history and are not copied; queued and running \
            jobs arrive queued.
            """
    )

    @Argument(help: "The store to copy: a directory or a redis:// URL.") var source: String
    @Argument(help: "The store to create (or an empty one): a directory or a redis:// URL.") var destination: String
    @Option(help: "Records per write.") var batch = 64
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        guard (1...100_000).contains(batch) else { throw ValidationError("--batch must be 1 to 100000") }
        guard source != destination else { throw ValidationError("SRC and DST are the same store") }
        let src = try StoreLocation.open(source, options: StoreOptions(readOnly: true))
        let dst = try StoreLocation.open(destination, options: StoreOptions(create: true, codec: src.codec))
        let report = try StoreCopier(src: src, dst: dst, batch: batch).run()
        if json { return try printJSON(report) }
        print("""
            copied \(src.location) to \(dst.location): \(report.records) records (\(byteCount(report.recordBytes))), \
            \(report.images) image entries, \(report.collections) collections (\(report.members) members), \(report.models) models, \
            \(report.jobsQueued) pending jobs (\(report.jobsNotCopied) finished ones not copied)
            verified: every record read back from DST passed its checksum and model check and equals SRC's bytes; \
            image entries, models and collections (in order) equal SRC's
            """)
    }
}

// MARK: - The copy

struct CopyReport: Codable, Equatable {
    var models = 0, fileHashes = 0, images = 0, records = 0, recordBytes = 0
    var collections = 0, members = 0, jobsQueued = 0, jobsNotCopied = 0
}

/// Copies through `CacheStore` only, so any backend pair works.
struct StoreCopier {
    let src: CacheStore
    let dst: CacheStore
    let batch: Int

    func run() throws -> CopyReport {
        let existing = try dst.read { try ($0.readTransaction.recordCount(), $0.readTransaction.count(.images), $0.collections().count) }
        guard existing == (0, 0, 0) else {
            throw CommandFailure("\(dst.location) already holds \(existing.0) records, \(existing.1) images and \(existing.2) collections; copy into a new or empty store")
        }
        var report = CopyReport()
        try copyModels(&report)
        try copyImages(&report)
        try copyRecords(&report)
        try copyCollections(&report)
        try copyJobs(&report)
        let counted = try dst.read { try ($0.readTransaction.recordCount(), $0.readTransaction.count(.images)) }
        guard counted == (report.records, report.images) else {
            throw CommandFailure("\(dst.location) holds \(counted.0) records and \(counted.1) image entries after the copy, not \(report.records) and \(report.images)")
        }
        return report
    }

    private func mismatch(_ what: String) -> CommandFailure {
        CommandFailure("\(dst.location): \(what) read back differs from \(src.location); the copy is not faithful (check both with voco inspect verify)")
    }

    private func copyModels(_ report: inout CopyReport) throws {
        let models = try src.read { try $0.models() }
        let hashes = try src.read { txn in
            var out: [FileHashEntry] = []
            try txn.readTransaction.scanCatalog(.models) { k, v in
                if k.first == 2, let entry = try? JSONDecoder().decode(FileHashEntry.self, from: Data(v)) { out.append(entry) }
                return true
            }
            return out
        }
        try dst.write { txn in
            for model in models { try txn.register(model) }
            for entry in hashes { try txn.transaction.cacheFileHash(entry) }
        }
        guard try dst.read({ try $0.models() }).sorted(by: { $0.fingerprint < $1.fingerprint }) == models.sorted(by: { $0.fingerprint < $1.fingerprint }) else {
            throw mismatch("the models")
        }
        (report.models, report.fileHashes) = (models.count, hashes.count)
    }

    private func copyImages(_ report: inout CopyReport) throws {
        var pending: [(Digest, ImageInfo)] = []
        func flush() throws {
            try dst.write { txn in for (digest, info) in pending { try txn.transaction.putImage(digest, info) } }
            let back = try dst.read { txn in try pending.map { try txn.image($0.0) } }
            guard back == pending.map(\.1) else { throw mismatch("an image entry") }
            report.images += pending.count
            pending = []
        }
        try src.read { txn in
            try txn.readTransaction.scanCatalog(.images) { k, v in
                guard let digest = Digest(k), let info = try? JSONDecoder().decode(ImageInfo.self, from: Data(v)) else {
                    throw CommandFailure("\(src.location): images entry \(Digest.hexString(k)) does not parse; run voco inspect verify")
                }
                pending.append((digest, info))
                if pending.count >= batch * 16 { try flush() }
                return true
            }
        }
        try flush()
    }

    /// Each record is verified as it is read from SRC (a damaged one stops the copy, naming it),
    /// written in batches, then read back from DST, verified again and compared byte for byte.
    private func copyRecords(_ report: inout CopyReport) throws {
        var pending: [EncodedRecord] = []
        func flush() throws {
            try dst.write { txn in for record in pending { try txn.put(record) } }
            try dst.read { txn in
                for record in pending {
                    guard let back = try txn.readTransaction.recordBytes(record.key), back == record.bytes else { throw mismatch("record \(record.key)") }
                    _ = try back.withUnsafeBytes { try txn.decodeChecked($0, key: record.key) }
                }
            }
            report.records += pending.count
            report.recordBytes += pending.reduce(0) { $0 + $1.bytes.count }
            pending = []
        }
        // Model references first: a record stored relative to its model's reference is verified
        // in DST against that reference, so the reference must be there before it.
        for references in [true, false] {
            try src.read { txn in
                try txn.readTransaction.scanRecords(model: nil) { k, v in
                    guard let key = RecordKey(k) else {
                        throw CommandFailure("\(src.location): a records key \(Digest.hexString(k)) is not model + image + codec; run voco inspect verify")
                    }
                    guard key.isReference == references else { return true }
                    _ = try txn.decodeChecked(v, key: key)
                    pending.append(EncodedRecord(key: key, bytes: Array(v)))
                    if pending.count >= batch { try flush() }
                    return true
                }
            }
            try flush()
        }
    }

    private func copyCollections(_ report: inout CopyReport) throws {
        let page = max(batch * 16, 1000)
        for collection in try src.read({ try $0.collections() }) {
            var offset = 0
            while offset < collection.count {
                let members = try src.read { try $0.members(of: collection.name, offset: offset, limit: page) }
                if members.isEmpty { break }
                try dst.write { try $0.append(members.map(\.image), to: collection.name) }
                let back = try dst.read { try $0.members(of: collection.name, offset: offset, limit: page) }
                guard back.map(\.image) == members.map(\.image) else { throw mismatch("collection \(collection.name)") }
                offset += members.count
            }
            report.collections += 1
            report.members += offset
        }
    }

    /// Queued and running jobs arrive queued (with their attempts); done and failed ones stay behind.
    private func copyJobs(_ report: inout CopyReport) throws {
        var after: JobID?
        while true {
            let page = try src.jobs.jobs(collection: nil, after: after, limit: 1000)
            guard let last = page.last else { break }
            let pending = page.map(\.job).filter { $0.state == .queued || $0.state == .running }
            if !pending.isEmpty { try dst.jobs.enqueue(pending) }
            report.jobsQueued += pending.count
            report.jobsNotCopied += page.count - pending.count
            after = last.id
        }
    }
}
