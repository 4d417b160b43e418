import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import VoCoImage
import VoCoPipeline
import VoCoStore

// MARK: - The ingest daemon as a server module

/// What `voco ingestd` is started with, beyond the server's options.
public struct IngestDaemonOptions: Sendable {
    /// Where uploads wait for their jobs (daemons sharing a store's queue must share it).
    public var uploads: String
    /// The spool: one folder per collection; nil for none.
    public var spool: String?
    /// Waiting + running jobs at which uploads get 503 and the spool stops taking files.
    public var maximumQueue: Int
    public var worker: IngestWorkerSettings
    /// A spool file is taken once unmodified this long.
    public var spoolSettle: TimeInterval
    /// How often the spool is scanned.
    public var spoolInterval: TimeInterval
    public var prepareThreads: Int?
    public var limits: ImageLimits
    /// False for a daemon that only accepts (uploads, spool) into the queue, leaving the
    /// compression to other daemons on the same store.
    public var runWorker: Bool

    public init(uploads: String, spool: String? = nil, maximumQueue: Int = 10_000, worker: IngestWorkerSettings = IngestWorkerSettings(),
                spoolSettle: TimeInterval = 2, spoolInterval: TimeInterval = 1, prepareThreads: Int? = nil, limits: ImageLimits = .default,
                runWorker: Bool = true) {
        self.uploads = uploads
        self.spool = spool
        self.maximumQueue = maximumQueue
        self.worker = worker
        self.spoolSettle = spoolSettle
        self.spoolInterval = spoolInterval
        self.prepareThreads = prepareThreads
        self.limits = limits
        self.runWorker = runWorker
    }

    /// Why these options cannot run, or nil.
    public func problem() -> String? {
        guard maximumQueue >= 1 else { return "the queue limit must be at least 1 (got \(maximumQueue))" }
        guard worker.lease >= 1, worker.lease <= 86_400 else { return "the lease must be 1 to 86400 seconds (got \(worker.lease))" }
        guard worker.shutdownGrace >= 0, worker.shutdownGrace <= 600 else { return "the shutdown grace must be 0 to 600 seconds" }
        guard spoolSettle >= 0, spoolSettle <= 3600, spoolInterval > 0, spoolInterval <= 3600 else {
            return "the spool settle time must be 0 to 3600 seconds and the scan interval above 0 and at most 3600"
        }
        return IngestOptions(batchSize: worker.batchSize, prepareThreads: prepareThreads).problem()
    }
}

/// Uploads, job status, the worker and the spool watcher over one store and one model.
public final class IngestModule: ServerModule, @unchecked Sendable {
    public let ingestor: Ingestor
    let intake: IngestIntake
    let worker: IngestWorker?
    let watcher: SpoolWatcher?
    let routes: IngestRoutes
    let logger: Logger

    /// Registers the model, prepares the folders, and reconciles them with the queue (what a
    /// crash left half done is finished before the first request).
    public init(store: CacheStore, model: AnsweringModel, options: IngestDaemonOptions, server: ServerOptions,
                metrics: ServerMetrics, logger: Logger) throws {
        if let problem = options.problem() { throw ServerError.invalidOption(problem) }
        ingestor = try Ingestor(store: store, model: model, options: IngestOptions(
            batchSize: options.worker.batchSize, prepareThreads: options.prepareThreads, limits: options.limits))
        let folders = try IngestFolders(uploads: options.uploads, spool: options.spool)
        let relay = WakeRelay()
        intake = IngestIntake(queue: store.jobs, folders: folders, model: ingestor.fingerprint, maximumQueue: options.maximumQueue,
                              wake: { relay.wake() })
        let intake = self.intake
        let ingestMetrics = IngestMetrics(metrics, queue: store.jobs)
        worker = options.runWorker
            ? IngestWorker(ingestor: ingestor, intake: intake, metrics: ingestMetrics, logger: logger, settings: options.worker) : nil
        relay.target = worker
        watcher = folders.spool.map {
            SpoolWatcher(intake: intake, spool: $0, settle: options.spoolSettle, interval: options.spoolInterval, logger: logger)
        }
        routes = IngestRoutes(intake: intake, metrics: ingestMetrics, maximumBodyBytes: server.maximumBodyBytes)
        self.logger = logger
        let reconciled = try intake.reconcile()
        logger.info("ingest ready", metadata: [
            "store": "\(store.location)", "model": "\(ingestor.fingerprint.hex)", "uploads": "\(folders.uploads)",
            "spool": "\(folders.spool ?? "none")", "worker": "\(options.runWorker)", "reconciled_enqueued": "\(reconciled.enqueued)",
            "reconciled_settled": "\(reconciled.settled)", "reconciled_discarded": "\(reconciled.discarded)",
        ])
    }

    public func addRoutes(to router: Router<ServerContext>) { routes.add(to: router) }

    /// After the server stopped: waits for the worker's thread to leave its loop (a batch it
    /// handed back may still be computing); false on timeout. A process about to exit should
    /// wait, or leave with `_exit`: OpenBLAS's exit handler hangs while a GEMM is in flight.
    public func waitForWorker(timeout: TimeInterval) -> Bool { worker?.waitForThread(timeout: timeout) ?? true }

    public var services: [any Service] { (worker.map { [$0] } ?? []) + (watcher.map { [$0] } ?? []) }

    public func health() async -> ModuleHealth {
        let queue = intake.queue
        do {
            let counts = try await offload { try queue.counts() }
            return ModuleHealth(name: "ingest", ok: true, detail: "\(counts.queued) queued, \(counts.running) running")
        } catch {
            return ModuleHealth(name: "ingest", ok: false, detail: "the store's queue cannot be read")
        }
    }
}

/// Lets the intake wake a worker made after it.
private final class WakeRelay: @unchecked Sendable {
    private let lock = NSLock()
    private weak var _target: IngestWorker?
    var target: IngestWorker? {
        get { lock.withLock { _target } }
        set { lock.withLock { _target = newValue } }
    }

    func wake() { target?.wake() }
}
