import Foundation
import VoCoStore

// MARK: - Key layout (Schemas/store-redis.md)

/// The keys of one store named `name`. Every key starts with `name:`; a `{...}` in a key is a
/// hash tag, so the keys that one script changes together share a slot.
struct RedisKeys: Sendable {
    let name: String

    // MARK: Store-wide

    /// Hash: schema_version, codec (JSON), created.
    var meta: String { "\(name):meta" }
    /// Hash: model fingerprint hex -> JSON model descriptor.
    var models: String { "\(name):models" }
    /// Hash: SHA-256 hex of a file identity -> JSON weight-hash entry.
    var fileHashes: String { "\(name):filehash" }

    // MARK: Records and images: one key each, spread over the cluster by their full key

    var recordPrefix: String { "\(name):rec:" }
    /// String: the record's bytes. `<model hex>:<image hex>:<codec name>`: the full fingerprint and digest.
    func record(_ key: RecordKey) -> String { "\(recordPrefix)\(key.model.hex):\(key.image.hex):\(key.codec.name)" }
    func recordPattern(model: Digest?) -> String { recordPrefix + (model.map { "\($0.hex):" } ?? "") + "*" }

    /// The `RecordKey` bytes of a stored key, else the bytes after the prefix (a key that does
    /// not parse, for verify to report and `deleteRawRecord` to remove).
    func rawRecordKey(_ key: [UInt8]) -> [UInt8] {
        let rest = Array(key.dropFirst(recordPrefix.utf8.count))
        let parts = rest.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard parts.count == 3, let model = Digest(hex: String(decoding: parts[0], as: UTF8.self)),
              let image = Digest(hex: String(decoding: parts[1], as: UTF8.self)),
              let codec = RecordCodec(name: String(decoding: parts[2], as: UTF8.self)) else { return rest }
        return RecordKey(model: model, image: image, codec: codec).bytes
    }

    /// The stored key of a raw records key (the inverse of `rawRecordKey`).
    func recordKey(raw: [UInt8]) -> [UInt8] {
        if let key = raw.withUnsafeBytes({ RecordKey($0) }) { return Array(record(key).utf8) }
        return Array(recordPrefix.utf8) + raw
    }

    var imagePrefix: String { "\(name):img:" }
    /// String: JSON image entry.
    func image(_ digest: Digest) -> String { imagePrefix + digest.hex }

    // MARK: Collections: a sorted set and the name, sharing the slot of the name's hash

    func collectionTag(_ collection: String) -> String { Digest.sha256(Array(collection.utf8)).hex }
    /// Sorted set: member = image digest hex, score = ordinal.
    func members(_ collection: String) -> String { "\(name):col:{\(collectionTag(collection))}:members" }
    /// String: the collection's name (the key has only its hash).
    func collectionName(_ collection: String) -> String { "\(name):col:{\(collectionTag(collection))}:name" }
    var collectionNamePattern: String { "\(name):col:{*}:name" }
    func membersKey(ofNameKey key: [UInt8]) -> [UInt8] { Array(key.dropLast(":name".utf8.count)) + Array(":members".utf8) }

    // MARK: The job queue: every key in the slot of `{name}`

    var jobsPrefix: String { "\(name):jobs{\(name)}:" }
    /// Stream: one entry per job, in enqueue order; the consumer group `workers` holds the claims.
    var jobStream: String { jobsPrefix + "stream" }
    /// Hash: per-state counts (queued, running, done, failed).
    var jobCounts: String { jobsPrefix + "counts" }
    /// Hash: the job's fields (Schemas/store-redis.md).
    func job(_ id: String) -> String { jobsPrefix + "job:" + id }
    /// Stream: the ids of one collection's jobs, under the same ids.
    func collectionJobs(_ collection: String) -> String { jobsPrefix + "col:" + collectionTag(collection) }
    /// List: the ids one enqueue call made, so that repeating the call returns them.
    func enqueueToken(_ token: String) -> String { jobsPrefix + "enqueued:" + token }
    static let consumerGroup = "workers"

    // MARK: Slots

    static func slot(_ key: String) -> Int { HashSlot.of(key) }
}
