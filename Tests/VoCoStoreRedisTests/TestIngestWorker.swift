import Foundation
@testable import VoCoStore

// MARK: - A minimal ingest worker over the job queue

/// What ingest workers do with the queue, written small for these tests (the `voco ingest`
/// workers are built elsewhere): claim a batch with a lease, make each job's cache, write image
/// entries, records and the collection membership in one write body (in that order, so that a
/// crash leaves only records no collection refers to), then finish the jobs.
struct TestIngestWorker {
    let store: CacheStore
    let name: String
    let model: ModelDescriptor
    var lease: TimeInterval = 30
    var batch = 3
    /// A job's image digest, entry and cache: the "compression".
    let make: (IngestJob) throws -> (image: Digest, info: ImageInfo, kv: KVTensors)
    /// Every job this worker compressed, by source.
    var log: Collector<(worker: String, source: String)>?
    /// Whether a job taken over by another worker before this one finished it is an error (else
    /// it is only counted: the other worker does it again, which jobs allow).
    var strict = true
    var takenOver: Collector<JobID>?

    /// Claims and processes batches until no job is pending, or `stop` says so; returns how many
    /// jobs it finished.
    @discardableResult
    func run(until stop: () -> Bool = { false }) throws -> Int {
        var finished = 0
        while !stop() {
            let claimed = try store.jobs.claim(worker: name, limit: batch, lease: lease)
            if claimed.isEmpty {
                if try store.jobs.counts().pending == 0 { break }
                Thread.sleep(forTimeInterval: 0.05)  // others hold the rest; their leases may end
                continue
            }
            try process(claimed)
            finished += claimed.count
        }
        return finished
    }

    /// Compresses, writes and finishes one claimed batch.
    func process(_ claimed: [ClaimedJob]) throws {
        let made = try claimed.map { job -> (job: ClaimedJob, image: Digest, info: ImageInfo, record: EncodedRecord) in
            let (image, info, kv) = try make(job.job)
            log?.add((name, job.job.source))
            return (job, image, info, try store.encode(kv, image: image, model: model))
        }
        try store.write { txn in
            for item in made {
                try txn.putImage(item.image, item.info)
                try txn.put(item.record)
            }
            for collection in Set(made.map(\.job.job.collection)).sorted() {
                try txn.append(made.filter { $0.job.job.collection == collection }.map(\.image), to: collection)
            }
        }
        let notHeld = try store.jobs.finish(made.map { JobOutcome(id: $0.job.id, state: .done, imageDigest: $0.image) }, worker: name)
        if strict, !notHeld.isEmpty { throw ProcessFailure("\(name): jobs \(notHeld) were taken over before they were finished") }
        notHeld.forEach { takenOver?.add($0) }
    }
}

/// Synthetic jobs `img-N`: image N of SyntheticKV, its cache under `model`.
func syntheticJobs(_ range: Range<Int>, collection: String, model: ModelDescriptor) -> [IngestJob] {
    range.map { IngestJob(collection: collection, source: "img-\($0)", model: model.fingerprint) }
}

/// `delay`: seconds of "compute" per image.
func syntheticMake(_ model: ModelDescriptor, delay: TimeInterval = 0) -> (IngestJob) throws -> (image: Digest, info: ImageInfo, kv: KVTensors) {
    { job in
        if delay > 0 { Thread.sleep(forTimeInterval: delay) }
        guard let n = Int(job.source.dropFirst(4)) else { throw ProcessFailure("not a synthetic source: \(job.source)") }
        return (SyntheticKV.imageDigest(n), ImageInfo(byteCount: n, format: "synthetic", width: 1, height: 1, sourceNames: [job.source]), smallCache(n, model))
    }
}
