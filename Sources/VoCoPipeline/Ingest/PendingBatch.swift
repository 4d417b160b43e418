import Foundation
import VoCoStore

// MARK: - One batch: outcomes gathered, then one write transaction

/// The files of one batch on their way into the store: records to put, `images` entries and
/// memberships, all committed by `commit` in one transaction.
struct PendingBatch: Sendable {
    private(set) var results: [IngestResult] = []
    private var records: [EncodedRecord] = []
    private var images: [(digest: Digest, info: ImageInfo)] = []
    /// In source order: the order the images join their collections.
    private var members: [(collection: String, digest: Digest)] = []
    /// False while every file of the batch is already in the store as it would be written.
    private var changes = false

    /// Adds one prepared file. `compress` returns the image's record, or nil when this run
    /// already compressed the image (an earlier file with the same bytes).
    mutating func add(_ source: IngestSource, _ prepared: Ingestor.Prepared,
                      compress: (Digest, [Float]) throws -> EncodedRecord?) throws {
        switch prepared {
        case let .storeError(error):
            throw error
        case let .skipped(reason):
            results.append(IngestResult(source: source, outcome: .skipped(reason: reason)))
        case let .failed(reason):
            results.append(IngestResult(source: source, outcome: .failed(reason: reason)))
        case let .image(digest, info, lookup, pixels):
            var outcome = IngestOutcome.cached(digest)
            if let pixels, !lookup.hasRecord {
                do {
                    if let record = try compress(digest, pixels) {
                        records.append(record)
                        outcome = .compressed(digest, storedBytes: record.bytes.count)
                    }
                } catch {
                    results.append(IngestResult(source: source, outcome: .failed(reason: Ingestor.describe(error, path: source.path))))
                    return
                }
            }
            // A known image only gains this source name (`putImage` merges names).
            var entry = lookup.info ?? info
            entry.sourceNames = [source.name]
            images.append((digest, entry))
            members.append((source.collection, digest))
            let unchanged = lookup.hasRecord && lookup.isMember && (lookup.info?.sourceNames.contains(source.name) ?? false)
            if !unchanged { changes = true }
            results.append(IngestResult(source: source, outcome: outcome))
        }
    }

    /// Writes the batch in one transaction (nothing when nothing changes): records first, then
    /// `images` entries, then memberships, so that a backend that applies them one by one never
    /// shows a membership before its record. Returns how many images joined a collection.
    func commit(to store: CacheStore) throws -> Int {
        guard changes else { return 0 }
        return try store.write { w in
            for record in records { try w.put(record) }
            for (digest, info) in images { try w.putImage(digest, info) }
            var added = 0
            var collections: [String] = []
            for (collection, _) in members where !collections.contains(collection) { collections.append(collection) }
            for collection in collections {
                var digests: [Digest] = []
                var seen = Set<Digest>()
                for (c, digest) in members where c == collection && seen.insert(digest).inserted {
                    digests.append(digest)
                    if try w.ordinal(of: digest, in: collection) == nil { added += 1 }
                }
                try w.append(digests, to: collection)
            }
            return added
        }
    }
}

// MARK: - A commit on a thread of its own

/// One batch's write transaction, started at once on another thread; `result` waits for it.
/// The caller starts the next batch's commit only after this one's `result`, so commits happen
/// one at a time, in order.
final class BackgroundCommit: @unchecked Sendable {
    private let done = DispatchGroup()
    private let results: [IngestResult]
    private let started: Date
    private let waitSeconds: Double
    private var outcome: Result<(added: Int, seconds: Double), Error> = .failure(CancellationError())

    init(_ batch: PendingBatch, store: CacheStore, started: Date, waitSeconds: Double) {
        results = batch.results
        self.started = started
        self.waitSeconds = waitSeconds
        done.enter()
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            let begin = Date()
            outcome = Result { (try batch.commit(to: store), Date().timeIntervalSince(begin)) }
            done.leave()
        }
    }

    func wait() { done.wait() }

    /// The committed batch, or the store's error.
    func result() throws -> Ingestor.Batch {
        done.wait()
        let (added, seconds) = try outcome.get()
        return Ingestor.Batch(results: results, added: added, seconds: Date().timeIntervalSince(started), commitSeconds: seconds,
                              waitSeconds: waitSeconds)
    }
}
