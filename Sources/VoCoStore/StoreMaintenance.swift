import Foundation

// MARK: - Stats

/// Counts and sizes of a store. Raw bytes are the values at their original dtype
/// (layers * 2 * tokens * channels * dtype size); stored bytes are whole records.
public struct StoreStats: Codable, Equatable, Sendable {
    public struct CodecStats: Codable, Equatable, Sendable {
        public var codec: String
        public var records: Int
        public var rawBytes: Int
        public var storedBytes: Int
        /// rawBytes / storedBytes
        public var ratio: Double
    }

    public var path: String
    public var schemaVersion: Int
    public var codec: String
    public var records: Int
    /// Model references (records relative to them are counted in `records`).
    public var references: Int
    public var images: Int
    public var collections: Int
    public var collectionMembers: Int
    public var models: Int
    public var jobs: Int
    public var rawBytes: Int
    public var storedBytes: Int
    public var ratio: Double
    public var perCodec: [CodecStats]
    public var mapSize: Int
    public var usedBytes: Int
}

extension CacheStore {
    public func stats() throws -> StoreStats {
        try read { txn in
            var perCodec: [RecordCodec: StoreStats.CodecStats] = [:]
            var references = 0  // model references are counted apart from image records
            try txn.scanRecords { summary in
                if summary.key.isReference {
                    references += 1
                    return true
                }
                let codec = summary.key.codec
                var entry = perCodec[codec] ?? .init(codec: codec.name, records: 0, rawBytes: 0, storedBytes: 0, ratio: 0)
                entry.records += 1
                entry.rawBytes = entry.rawBytes.addingSaturating(summary.header.rawLength)
                entry.storedBytes = entry.storedBytes.addingSaturating(summary.storedBytes)
                perCodec[codec] = entry
                return true
            }
            let codecs = perCodec.sorted { $0.key.rawValue < $1.key.rawValue }.map { _, entry -> StoreStats.CodecStats in
                var entry = entry
                entry.ratio = ratio(entry.rawBytes, entry.storedBytes)
                return entry
            }
            let raw = codecs.reduce(0) { $0.addingSaturating($1.rawBytes) }, stored = codecs.reduce(0) { $0.addingSaturating($1.storedBytes) }
            let t = txn.readTransaction
            let figures = backend.storageFigures()
            return StoreStats(
                path: location, schemaVersion: figures["schemaVersion"] ?? 0, codec: codec.description,
                records: try t.recordCount() - references, references: references, images: try t.count(.images),
                collections: try t.collections().count, collectionMembers: try t.count(.collections),
                models: try t.models().count, jobs: try jobs.counts().total,
                rawBytes: raw, storedBytes: stored, ratio: ratio(raw, stored), perCodec: codecs,
                mapSize: figures["mapSize"] ?? 0, usedBytes: figures["usedBytes"] ?? 0)
        }
    }
}

private func ratio(_ raw: Int, _ stored: Int) -> Double { stored == 0 ? 0 : Double(raw) / Double(stored) }

extension Int {
    /// Sums of sizes a damaged store may make huge: they stop at `Int.max` instead of trapping.
    func addingSaturating(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}

// MARK: - Verify

/// One thing `verify` refused: a record (key, image, model) or another entry, and why.
public struct VerifyFailure: Codable, Equatable, Sendable {
    public var database: String
    public var key: String
    public var image: String?
    public var model: String?
    public var reason: String

    public init(database: String, key: String, image: String? = nil, model: String? = nil, reason: String) {
        self.database = database
        self.key = key
        self.image = image
        self.model = model
        self.reason = reason
    }
}

public struct VerifyReport: Codable, Equatable, Sendable {
    public var recordsChecked: Int
    public var entriesChecked: Int
    public var failures: [VerifyFailure]
}

extension CacheStore {
    /// Checks every record completely (checksum, header against key and registered model, zstd
    /// frame, body), parses every catalog entry, and checks the structure: every member's image
    /// entry and a record of its image present, every record's image entry present, and what
    /// the backend can check of its own (entry counts). One snapshot where the backend has them.
    public func verify() throws -> VerifyReport {
        let checked = try backend.verifyingBackend()
        if checked !== backend { return try CacheStore(backend: checked).verify() }
        var report = try read { txn in
            var report = VerifyReport(recordsChecked: 0, entriesChecked: 0, failures: [])
            var recordImages = Set<Digest>()
            try txn.readTransaction.scanRecords(model: nil) { k, v in
                report.recordsChecked += 1
                guard let key = RecordKey(k) else {
                    report.failures.append(VerifyFailure(database: "records", key: Digest.hexString(k), reason: "the key is not model + image + codec"))
                    return true
                }
                recordImages.insert(key.image)
                do { _ = try txn.decodeChecked(v, key: key) } catch {
                    let reason = (error as? StoreError).flatMap { if case let .corruptRecord(_, _, _, r) = $0 { return r } else { return nil } } ?? "\(error)"
                    report.failures.append(VerifyFailure(database: "records", key: key.description, image: key.image.hex, model: key.model.hex, reason: reason))
                }
                return true
            }
            var imageEntries = Set<Digest>()
            var members: [(key: String, image: Digest)] = []
            let checks: [(CatalogNamespace, (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> String?)] = [
                (.images, { k, v in
                    guard let digest = Digest(k) else { return "key is not a digest" }
                    if let problem = parses(ImageInfo.self, v) { return problem }
                    imageEntries.insert(digest)
                    return nil
                }),
                (.models, { k, v in
                    switch k.first {
                    case 1: return k.count != 33 ? "key is not 1 + fingerprint" : parses(ModelDescriptor.self, v)
                    case 2: return k.count != 33 ? "key is not 2 + identity digest" : parses(FileHashEntry.self, v)
                    default: return "unknown key kind"
                    }
                }),
                (.collections, { k, v in
                    guard k.count >= 10, k[k.count - 9] == 0, let digest = Digest(v) else { return "not name + 0 + ordinal -> digest" }
                    members.append((Digest.hexString(k), digest))
                    return nil
                }),
            ]
            for (namespace, check) in checks {
                try txn.readTransaction.scanCatalog(namespace) { k, v in
                    report.entriesChecked += 1
                    if let reason = check(k, v) { report.failures.append(VerifyFailure(database: namespace.rawValue, key: Digest.hexString(k), reason: reason)) }
                    return true
                }
            }
            for member in members {
                if !imageEntries.contains(member.image) {
                    report.failures.append(VerifyFailure(database: "collections", key: member.key, image: member.image.hex, reason: "the member's image has no images entry"))
                }
                if !recordImages.contains(member.image) {
                    report.failures.append(VerifyFailure(database: "collections", key: member.key, image: member.image.hex, reason: "the member's image has no record"))
                }
            }
            for image in recordImages.subtracting(imageEntries).sorted() where image != ModelReference.image {
                report.failures.append(VerifyFailure(database: "records", key: image.hex, image: image.hex, reason: "records of this image exist but its images entry does not"))
            }
            return report
        }
        report.failures += try backend.checkStructure()
        return report
    }
}

private func parses<T: Decodable>(_ type: T.Type, _ raw: UnsafeRawBufferPointer) -> String? {
    do { _ = try JSONDecoder().decode(T.self, from: Data(raw)); return nil } catch { return "not a valid \(T.self): \(error)" }
}

// MARK: - Garbage collection

public struct GCReport: Codable, Equatable, Sendable {
    public var recordsRemoved: Int
    public var imagesRemoved: Int
    public var bytesFreed: Int
    public var dryRun: Bool
}

extension CacheStore {
    /// Drops every record and image entry whose image no collection refers to (model references
    /// stay: StoreReferences.swift), in one write
    /// transaction (or, with `dryRun`, only counts them). Refuses to run on a store that does
    /// not verify: a damaged collection entry would make intact records look unreferenced.
    public func gc(dryRun: Bool = false) throws -> GCReport {
        let report = try verify()
        guard report.failures.isEmpty else {
            throw StoreError.damaged(path: location, failures: report.failures.count,
                                     first: report.failures.first.map { "\($0.database) \($0.key): \($0.reason)" } ?? "")
        }
        let body = { (txn: any StoreReads) -> (GCReport, [[UInt8]], [Digest]) in
            var referenced = Set<Digest>()
            try txn.readTransaction.scanCatalog(.collections) { _, v in
                if let digest = Digest(v) { referenced.insert(digest) }
                return true
            }
            var bytes = 0
            var records: [[UInt8]] = [], images: [Digest] = []
            try txn.readTransaction.scanRecords(model: nil) { k, v in
                if let key = RecordKey(k), !key.isReference, !referenced.contains(key.image) {
                    records.append(Array(k))
                    bytes = bytes.addingSaturating(v.count)
                }
                return true
            }
            try txn.readTransaction.scanCatalog(.images) { k, v in
                if let digest = Digest(k), !referenced.contains(digest) {
                    images.append(digest)
                    bytes = bytes.addingSaturating(v.count)
                }
                return true
            }
            return (GCReport(recordsRemoved: records.count, imagesRemoved: images.count, bytesFreed: bytes, dryRun: dryRun), records, images)
        }
        if dryRun { return try read { try body($0).0 } }
        return try write { txn in
            let (report, records, images) = try body(txn)
            try txn.transaction.deleteRawRecords(records)
            try txn.transaction.deleteImages(images)
            return report
        }
    }
}
