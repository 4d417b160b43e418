import Foundation
import Logging
import ServiceLifecycle
import VoCoPipeline
import VoCoStore

// MARK: - Settings

public struct IngestWorkerSettings: Sendable {
    /// Jobs claimed (and committed) together.
    public var batchSize: Int
    /// How long a claim holds its jobs; renewed every third of it while the batch runs. A
    /// worker that dies holds its jobs at most this long before another may take them.
    public var lease: TimeInterval
    /// How often an idle worker looks at the queue (uploads and the spool also wake it).
    public var idlePoll: TimeInterval
    /// On shutdown, how long the batch in flight may take to finish before its jobs are
    /// handed back to the queue.
    public var shutdownGrace: TimeInterval

    public init(batchSize: Int = 16, lease: TimeInterval = 30, idlePoll: TimeInterval = 1, shutdownGrace: TimeInterval = 3) {
        self.batchSize = batchSize
        self.lease = lease
        self.idlePoll = idlePoll
        self.shutdownGrace = shutdownGrace
    }
}

// MARK: - The worker

/// Claims jobs from the store's queue and ingests them, a batch at a time, on a thread of its
/// own (the compression pass never runs on an event loop or in Swift's task pool). One log line
/// per batch. On a graceful shutdown it stops claiming; the batch in flight gets
/// `shutdownGrace` to finish, else its jobs go back to the queue (its transaction, if it
/// commits later, only writes what a retry would write).
final class IngestWorker: Service, @unchecked Sendable {
    let ingestor: Ingestor
    let intake: IngestIntake
    let metrics: IngestMetrics
    let logger: Logger
    let settings: IngestWorkerSettings
    let id: String

    private let state = NSCondition()
    // Guarded by `state`:
    private var stopRequested = false
    private var wakeRequested = false
    private var inFlight: [JobID] = []
    /// A claim transaction is running: its jobs are not in `inFlight` yet.
    private var claiming = false
    private var finished = false
    private var threadDone = false
    private var waiter: CheckedContinuation<Void, Never>?

    init(ingestor: Ingestor, intake: IngestIntake, metrics: IngestMetrics, logger: Logger, settings: IngestWorkerSettings) {
        self.ingestor = ingestor
        self.intake = intake
        self.metrics = metrics
        self.logger = logger
        self.settings = settings
        id = "\(ProcessInfo.processInfo.hostName):\(getpid()):\(UUID().uuidString.prefix(8).lowercased())"
    }

    var queue: any JobQueue { intake.queue }

    /// New jobs: look now instead of at the next poll.
    func wake() {
        state.withLock {
            wakeRequested = true
            state.broadcast()
        }
    }

    func run() async {
        let thread = Thread { [self] in
            loop()
            state.withLock {
                threadDone = true
                state.broadcast()
            }
            markFinished()
        }
        thread.name = "voco-ingest-worker"
        thread.stackSize = 8 << 20
        thread.start()
        await withTaskCancellationOrGracefulShutdownHandler {
            await withCheckedContinuation { continuation in
                let done = state.withLock { () -> Bool in
                    if finished { return true }
                    waiter = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancelOrGracefulShutdown: {
            self.requestStop()
        }
    }

    // MARK: Stopping

    /// Waits until the worker's thread has left its loop (a batch handed back at shutdown may
    /// still be computing after `run` returned); false on timeout.
    func waitForThread(timeout: TimeInterval) -> Bool {
        state.withLock {
            let until = Date().addingTimeInterval(timeout)
            while !threadDone { if !state.wait(until: until) { return threadDone } }
            return true
        }
    }

    private func requestStop() {
        state.withLock {
            stopRequested = true
            state.broadcast()
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + settings.shutdownGrace) { [self] in
            let ids = state.withLock { () -> [JobID] in
                while claiming { state.wait() }  // a claim in progress: its jobs are handed back too
                return finished ? [] : inFlight
            }
            guard !ids.isEmpty else { return markFinished() }
            do {
                try queue.release(ids, worker: id)
                logger.warning("shutdown: the batch in flight did not finish in time; its jobs are back in the queue",
                               metadata: ["jobs": "\(ids.count)", "grace_seconds": "\(settings.shutdownGrace)"])
            } catch {
                logger.error("shutdown: could not hand the batch in flight back; its jobs return when their lease ends",
                             metadata: ["error": "\(error)"])
            }
            markFinished()
        }
    }

    private func markFinished() {
        let continuation = state.withLock { () -> CheckedContinuation<Void, Never>? in
            guard !finished else { return nil }
            finished = true
            defer { waiter = nil }
            return waiter
        }
        continuation?.resume()
    }

    /// Sleeps up to `seconds`, less when woken or stopped.
    private func pause(_ seconds: TimeInterval) {
        state.withLock {
            let until = Date().addingTimeInterval(seconds)
            while !wakeRequested, !stopRequested, state.wait(until: until) {}
            wakeRequested = false
        }
    }

    // MARK: The loop

    private func loop() {
        var backoff = 0.5
        while true {
            let claimed: [ClaimedJob]
            do {
                // Claiming and recording what was claimed happen under the stop check, so that
                // a shutdown hands back every job this worker holds.
                guard state.withLock({ () -> Bool in
                    guard !stopRequested else { return false }
                    claiming = true
                    return true
                }) else { break }
                defer {
                    state.withLock {
                        claiming = false
                        state.broadcast()
                    }
                }
                claimed = try queue.claim(worker: id, limit: settings.batchSize, lease: settings.lease)
                state.withLock { inFlight = claimed.map(\.id) }
            } catch {
                logger.error("cannot claim jobs; retrying", metadata: ["error": "\(error)", "retry_seconds": "\(backoff)"])
                pause(backoff)
                backoff = min(backoff * 2, 30)
                continue
            }
            guard !claimed.isEmpty else {
                pause(settings.idlePoll)
                continue
            }
            if state.withLock({ stopRequested }) {  // stopped while claiming: hand the jobs straight back
                try? queue.release(claimed.map(\.id), worker: id)
                break
            }
            let renewal = renewLeases()
            do {
                try process(claimed)
                backoff = 0.5
            } catch {
                logger.error("batch failed; its jobs go back to the queue", metadata: ["error": "\(error)", "jobs": "\(claimed.count)"])
                try? queue.release(claimed.map(\.id), worker: id)
                pause(backoff)
                backoff = min(backoff * 2, 30)
            }
            renewal.cancel()
            state.withLock { inFlight = [] }
        }
    }

    /// Extends the batch's leases every third of the lease while it runs.
    private func renewLeases() -> DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: .global())
        let interval = max(0.05, settings.lease / 3)
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [self] in
            let ids = state.withLock { inFlight }
            guard !ids.isEmpty, let lost = try? queue.renew(ids, worker: id, lease: settings.lease), !lost.isEmpty else { return }
            logger.warning("lost the lease of jobs in flight (another worker may redo them)", metadata: ["jobs": "\(lost)"])
        }
        timer.resume()
        return timer
    }

    /// One batch: ingest, record outcomes, then settle the jobs' files.
    private func process(_ claimed: [ClaimedJob]) throws {
        let started = Date()
        var outcomes: [JobOutcome] = []
        var runnable: [(job: ClaimedJob, source: IngestSource)] = []
        for claim in claimed {
            guard claim.job.model == ingestor.fingerprint else {
                outcomes.append(JobOutcome(id: claim.id, state: .failed, error: "queued for model \(claim.job.model.hex), but this daemon compresses with \(ingestor.fingerprint.hex); run a daemon with that model"))
                continue
            }
            let source = IngestSource(path: claim.job.source, name: intake.folders.displayName(source: claim.job.source), collection: claim.job.collection)
            runnable.append((claim, source))
        }
        var results: [IngestResult] = []
        try ingestor.run(runnable.map(\.source)) { results += $0.results }
        for ((claim, _), result) in zip(runnable, results) {
            switch result.outcome {
            case let .compressed(digest, _), let .cached(digest):
                outcomes.append(JobOutcome(id: claim.id, state: .done, imageDigest: digest))
            case let .skipped(reason), let .failed(reason):
                outcomes.append(JobOutcome(id: claim.id, state: .failed, error: reason))
            }
        }
        let notHeld = Set(try queue.finish(outcomes, worker: id))
        let sources = Dictionary(uniqueKeysWithValues: claimed.map { ($0.id, $0.job.source) })
        for outcome in outcomes where !notHeld.contains(outcome.id) {
            (outcome.state == .done ? metrics.jobsDone : metrics.jobsFailed).increment()
            guard let source = sources[outcome.id] else { continue }
            do { try intake.folders.settle(source: source, job: outcome.id, failed: outcome.state == .failed ? outcome.error ?? "failed" : nil) } catch {
                logger.error("cannot move or remove a finished job's file", metadata: ["job": "\(outcome.id)", "error": "\(error)"])
            }
        }
        let seconds = Date().timeIntervalSince(started)
        metrics.record(results, failedWithoutRun: claimed.count - runnable.count, seconds: seconds)
        let count = { (match: (IngestOutcome) -> Bool) in results.filter { match($0.outcome) }.count }
        logger.info("batch", metadata: [
            "jobs": "\(claimed.count)",
            "compressed": "\(count { if case .compressed = $0 { return true }; return false })",
            "cached": "\(count { if case .cached = $0 { return true }; return false })",
            "failed": "\(outcomes.filter { $0.state == .failed }.count)",
            "not_held": "\(notHeld.count)",
            "seconds": "\(String(format: "%.3f", seconds))",
        ])
    }
}
