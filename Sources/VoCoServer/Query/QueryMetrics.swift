import Foundation
import Prometheus

// MARK: - What the query server counts

/// The query server's metrics in the server's registry.
final class QueryMetrics: Sendable {
    let answered, failed: Counter
    let refusedBusy, refusedInvalid, refusedNotFound, refusedConflict, refusedUnprocessable: Counter
    let generatedTokens: Counter
    let decodeSeconds, prefillSeconds: Counter
    let questionSeconds: DurationHistogram

    init(_ metrics: ServerMetrics, engine: any QueryEngine, pool: ComputePool) {
        let r = metrics.registry
        let questions = metric("voco_query_questions", unit: "total", help: "Questions answered or failed while computing")
        answered = r.makeCounter(descriptor: questions, labels: [("outcome", "answered")])
        failed = r.makeCounter(descriptor: questions, labels: [("outcome", "failed")])
        let refusals = metric("voco_query_refusals", unit: "total", help: "Questions refused before or while planning, by reason")
        refusedBusy = r.makeCounter(descriptor: refusals, labels: [("reason", "busy")])
        refusedInvalid = r.makeCounter(descriptor: refusals, labels: [("reason", "invalid")])
        refusedNotFound = r.makeCounter(descriptor: refusals, labels: [("reason", "not_found")])
        refusedConflict = r.makeCounter(descriptor: refusals, labels: [("reason", "wrong_model")])
        refusedUnprocessable = r.makeCounter(descriptor: refusals, labels: [("reason", "unprocessable")])
        generatedTokens = r.makeCounter(descriptor: metric("voco_query_generated_tokens", unit: "total", help: "Answer tokens generated"))
        decodeSeconds = r.makeCounter(descriptor: metric("voco_query_decode_seconds", unit: "total",
                                                         help: "Seconds spent generating answer tokens (tokens/s = rate(generated_tokens) / rate(decode_seconds))"))
        prefillSeconds = r.makeCounter(descriptor: metric("voco_query_prefill_seconds", unit: "total", help: "Seconds spent reading caches and prompts into the model"))
        questionSeconds = r.makeDurationHistogram(
            descriptor: metric("voco_query_duration", unit: "seconds", help: "Time from admission to the answer, waiting included"),
            buckets: [.milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                      .seconds(2.5), .seconds(5), .seconds(10), .seconds(30)])
        let inFlight = metric("voco_query_in_flight", unit: "", help: "Questions computing or waiting for a compute thread")
        let computing = r.makeGauge(descriptor: inFlight, labels: [("state", "computing")])
        let waiting = r.makeGauge(descriptor: inFlight, labels: [("state", "waiting")])
        let hits = r.makeCounter(descriptor: metric("voco_query_cache_hits", unit: "total", help: "Decoded-cache LRU hits"))
        let misses = r.makeCounter(descriptor: metric("voco_query_cache_misses", unit: "total", help: "Decoded-cache LRU misses (records read and decoded)"))
        let evictions = r.makeCounter(descriptor: metric("voco_query_cache_evictions", unit: "total", help: "Decoded caches evicted from the LRU"))
        let seen = Seen()
        let bytes = r.makeGauge(descriptor: metric("voco_query_cache_bytes", unit: "", help: "Bytes of decoded caches the LRU holds"))
        metrics.beforeScrape { [weak engine, weak pool] in
            if let pool {
                let counts = pool.counts
                computing.set(Double(counts.computing))
                waiting.set(Double(counts.waiting))
            }
            if let counters = engine?.cacheCounters {
                // The engine counts since it started; the counters advance by what is new.
                let last = seen.swap(counters)
                hits.increment(by: Int64(max(0, counters.hits - last.hits)))
                misses.increment(by: Int64(max(0, counters.misses - last.misses)))
                evictions.increment(by: Int64(max(0, counters.evictions - last.evictions)))
                bytes.set(Double(counters.bytes))
            }
        }
    }

    func record(_ answer: AskAnswer, duration: Duration) {
        answered.increment()
        generatedTokens.increment(by: Int64(answer.tokens.count))
        decodeSeconds.increment(by: answer.timings.decode)
        prefillSeconds.increment(by: answer.timings.prefill)
        questionSeconds.record(duration)
    }

    /// Counts an error the engine threw.
    func record(_ error: Error) {
        guard let problem = error as? Problem else { return failed.increment() }
        switch problem.status.code {
        case 400: refusedInvalid.increment()
        case 404: refusedNotFound.increment()
        case 409: refusedConflict.increment()
        case 422: refusedUnprocessable.increment()
        case 503: refusedBusy.increment()
        default: failed.increment()
        }
    }
}

/// The engine's counters at the last scrape.
private final class Seen: @unchecked Sendable {
    private let lock = NSLock()
    private var last = EngineCacheCounters()

    func swap(_ new: EngineCacheCounters) -> EngineCacheCounters {
        lock.withLock {
            let old = last
            last = new
            return old
        }
    }
}
