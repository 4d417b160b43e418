import Foundation
import Prometheus
import VoCoPipeline
import VoCoStore

// MARK: - What the ingest daemon counts

/// The ingest daemon's metrics in the server's registry.
final class IngestMetrics: Sendable {
    let compressed, cached, failed: Counter
    let jobsDone, jobsFailed: Counter
    let uploadsAccepted, uploadsRejectedQueueFull: Counter
    let bytesStored: Counter
    let queued, running: Gauge
    let batchSeconds: DurationHistogram

    init(_ metrics: ServerMetrics, queue: any JobQueue) {
        let r = metrics.registry
        let images = metric("voco_ingest_images", unit: "total", help: "Images the daemon finished, by outcome (compressed now, already cached, failed)")
        compressed = r.makeCounter(descriptor: images, labels: [("outcome", "compressed")])
        cached = r.makeCounter(descriptor: images, labels: [("outcome", "cached")])
        failed = r.makeCounter(descriptor: images, labels: [("outcome", "failed")])
        let jobs = metric("voco_ingest_jobs", unit: "total", help: "Jobs this daemon finished, by final state")
        jobsDone = r.makeCounter(descriptor: jobs, labels: [("state", "done")])
        jobsFailed = r.makeCounter(descriptor: jobs, labels: [("state", "failed")])
        let uploads = metric("voco_ingest_uploads", unit: "total", help: "Uploads answered, by result")
        uploadsAccepted = r.makeCounter(descriptor: uploads, labels: [("result", "accepted")])
        uploadsRejectedQueueFull = r.makeCounter(descriptor: uploads, labels: [("result", "queue_full")])
        bytesStored = r.makeCounter(descriptor: metric("voco_ingest_bytes_stored", unit: "total", help: "Bytes of records written by this daemon"))
        let depth = metric("voco_ingest_queue_depth", unit: "", help: "Jobs in the store's queue, by state (all workers of the store)")
        queued = r.makeGauge(descriptor: depth, labels: [("state", "queued")])
        running = r.makeGauge(descriptor: depth, labels: [("state", "running")])
        batchSeconds = r.makeDurationHistogram(
            descriptor: metric("voco_ingest_batch_duration", unit: "seconds", help: "Time to claim, compress and commit one batch of jobs"),
            buckets: [.milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
                      .seconds(5), .seconds(10), .seconds(30), .seconds(60)])
        metrics.beforeScrape { [queued, running] in
            guard let counts = try? queue.counts() else { return }
            queued.set(Double(counts.queued))
            running.set(Double(counts.running))
        }
    }

    func record(_ results: [IngestResult], failedWithoutRun: Int, seconds: Double) {
        failed.increment(by: Int64(failedWithoutRun))
        for result in results {
            switch result.outcome {
            case let .compressed(_, bytes):
                compressed.increment()
                bytesStored.increment(by: Int64(bytes))
            case .cached: cached.increment()
            case .failed, .skipped: failed.increment()
            }
        }
        batchSeconds.record(.milliseconds(Int64(seconds * 1000)))
    }
}
