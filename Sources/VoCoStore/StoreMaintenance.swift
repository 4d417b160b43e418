import CLMDB
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

extension KVStore {
    public func stats() throws -> StoreStats {
        try read { txn in
            var perCodec: [RecordCodec: StoreStats.CodecStats] = [:]
            try txn.scanRecords { summary in
                let codec = summary.key.codec
                var entry = perCodec[codec] ?? .init(codec: codec.name, records: 0, rawBytes: 0, storedBytes: 0, ratio: 0)
                entry.records += 1
                entry.rawBytes += summary.header.rawLength
                entry.storedBytes += summary.storedBytes
                perCodec[codec] = entry
                return true
            }
            let codecs = perCodec.sorted { $0.key.rawValue < $1.key.rawValue }.map { _, entry -> StoreStats.CodecStats in
                var entry = entry
                entry.ratio = ratio(entry.rawBytes, entry.storedBytes)
                return entry
            }
            let raw = codecs.reduce(0) { $0 + $1.rawBytes }, stored = codecs.reduce(0) { $0 + $1.storedBytes }
            return StoreStats(
                path: path, schemaVersion: Self.schemaVersion, codec: codec.description,
                records: try txn.txn.count(databases.records), images: try txn.txn.count(databases.images),
                collections: try txn.collections().count, collectionMembers: try txn.txn.count(databases.collections),
                models: try txn.models().count, jobs: try txn.txn.count(databases.jobs),
                rawBytes: raw, storedBytes: stored, ratio: ratio(raw, stored), perCodec: codecs,
                mapSize: mapSize, usedBytes: usedBytes)
        }
    }
}

private func ratio(_ raw: Int, _ stored: Int) -> Double { stored == 0 ? 0 : Double(raw) / Double(stored) }

// MARK: - Verify

/// One thing `verify` refused: a record (key, image, model) or another entry, and why.
public struct VerifyFailure: Codable, Equatable, Sendable {
    public var database: String
    public var key: String
    public var image: String?
    public var model: String?
    public var reason: String
}

public struct VerifyReport: Codable, Equatable, Sendable {
    public var recordsChecked: Int
    public var entriesChecked: Int
    public var failures: [VerifyFailure]
}

extension KVStore {
    /// Checks every record completely (checksum, header against key and registered model, zstd
    /// frame, body) and parses every image, model, job and collection entry. One snapshot.
    public func verify() throws -> VerifyReport {
        try read { txn in
            var report = VerifyReport(recordsChecked: 0, entriesChecked: 0, failures: [])
            try txn.txn.scan(databases.records) { k, v in
                report.recordsChecked += 1
                guard let key = RecordKey(k) else {
                    report.failures.append(VerifyFailure(database: "records", key: Digest.hexString(k), reason: "the key is not model + image + codec"))
                    return true
                }
                do { _ = try txn.decodeChecked(v, key: key) } catch {
                    let reason = (error as? StoreError).flatMap { if case let .corruptRecord(_, _, _, r) = $0 { return r } else { return nil } } ?? "\(error)"
                    report.failures.append(VerifyFailure(database: "records", key: key.description, image: key.image.hex, model: key.model.hex, reason: reason))
                }
                return true
            }
            let checks: [(String, MDB_dbi, (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> String?)] = [
                ("images", databases.images, { k, v in k.count != 32 ? "key is not a digest" : parses(ImageInfo.self, v) }),
                ("models", databases.models, { k, v in
                    switch k.first {
                    case 1: return k.count != 33 ? "key is not 1 + fingerprint" : parses(ModelDescriptor.self, v)
                    case 2: return k.count != 33 ? "key is not 2 + identity digest" : parses(FileHashEntry.self, v)
                    default: return "unknown key kind"
                    }
                }),
                ("jobs", databases.jobs, { k, v in k.count != 8 ? "key is not an id" : parses(IngestJob.self, v) }),
                ("collections", databases.collections, { k, v in CollectionKeys.parse(k) == nil || v.count != 32 ? "not name + ordinal -> digest" : nil }),
            ]
            for (name, dbi, check) in checks {
                try txn.txn.scan(dbi) { k, v in
                    report.entriesChecked += 1
                    if let reason = check(k, v) { report.failures.append(VerifyFailure(database: name, key: Digest.hexString(k), reason: reason)) }
                    return true
                }
            }
            return report
        }
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

extension KVStore {
    /// Drops every record and image entry whose image no collection refers to, in one write
    /// transaction (or, with `dryRun`, only counts them).
    public func gc(dryRun: Bool = false) throws -> GCReport {
        let body = { (txn: StoreTransaction) -> GCReport in
            let referenced = try txn.referencedImages()
            var bytes = 0
            let records = try txn.txn.keys(self.databases.records) { k, v in
                let image = k.count == 65 ? Digest(UnsafeRawBufferPointer(rebasing: k[32..<64])) : nil
                let orphan = image.map { !referenced.contains($0) } ?? false
                if orphan { bytes += v.count }
                return orphan
            }
            let images = try txn.txn.keys(self.databases.images) { k, v in
                let orphan = Digest(k).map { !referenced.contains($0) } ?? false
                if orphan { bytes += v.count }
                return orphan
            }
            if !dryRun {
                for key in records { try txn.txn.delete(self.databases.records, key) }
                for key in images { try txn.txn.delete(self.databases.images, key) }
            }
            return GCReport(recordsRemoved: records.count, imagesRemoved: images.count, bytesFreed: bytes, dryRun: dryRun)
        }
        return dryRun ? try read(body) : try write(body)
    }
}
