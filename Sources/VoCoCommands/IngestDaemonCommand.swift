import ArgumentParser
import Foundation
import Logging
import VoCoPipeline
import VoCoServer
import VoCoStore

/// `voco ingestd`: the ingest daemon (HTTP uploads, a spool folder per collection, a worker).
struct IngestDaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingestd",
        abstract: "Run the ingest daemon: HTTP uploads and spool folders, queued in the store, compressed by a worker.",
        discussion: """
            API: Schemas/ingest-api.json; guarantees and the spool rule: docs/ingest.md. Binds \
            127.0.0.1 unless --listen says otherwise. SIGTERM or SIGINT: stop taking requests, let the \
            batch in flight finish for --shutdown-grace seconds, else put its jobs back in the queue, exit.

            Exit codes: 0 after a graceful shutdown; 1 the daemon could not start or failed (store, \
            model, address in use); 64 bad arguments.
            """
    )

    @OptionGroup var ingest: IngestArguments

    @OptionGroup var server: ServerArguments

    @Option(help: "Address to listen on: HOST, HOST:PORT, :PORT or [IPv6]:PORT (default 127.0.0.1:\(Self.defaultPort); port 0 = any free port).")
    var listen = "\(ServerOptions.defaultHost):\(Self.defaultPort)"

    @Option(help: "The spool folder: files dropped in SPOOL/NAME/ join collection NAME.")
    var spool: String?

    @Option(help: "Where uploads wait for their jobs (default: $XDG_STATE_HOME/voco/uploads, else ~/.local/state/voco/uploads).")
    var uploads: String?

    @Option(help: "Waiting + running jobs at which uploads get 503 (Retry-After) and the spool waits.")
    var queueLimit = 10_000

    @Option(help: "Seconds a claimed batch is leased (renewed while it runs); a crashed daemon's jobs return after it.")
    var lease = 30.0

    @Option(help: "Seconds the batch in flight may take to finish on shutdown before its jobs go back to the queue.")
    var shutdownGrace = 3.0

    @Option(help: "Seconds a spool file must be unmodified before it is taken.")
    var spoolSettle = 2.0

    @Flag(help: "Only accept uploads and spool files into the store's queue; other daemons on the store compress them.")
    var noWorker = false

    static let defaultPort = 8390

    func validate() throws {
        _ = try listenAddress()
        if let problem = daemonOptions().problem() { throw ValidationError(problem) }
    }

    func listenAddress() throws -> (host: String, port: Int) {
        try ServerArguments.listenAddress(listen, defaultPort: Self.defaultPort)
    }

    func daemonOptions() -> IngestDaemonOptions {
        IngestDaemonOptions(uploads: uploads ?? Self.defaultUploads, spool: spool, maximumQueue: queueLimit,
                            worker: IngestWorkerSettings(batchSize: ingest.batch, lease: lease, shutdownGrace: shutdownGrace),
                            spoolSettle: spoolSettle, prepareThreads: ingest.prepareThreads, limits: ingest.limits, runWorker: !noWorker)
    }

    static var defaultUploads: String {
        let environment = ProcessInfo.processInfo.environment
        let state = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".local/state")
        return (state as NSString).appendingPathComponent("voco/uploads")
    }

    func run() throws {
        let logger = server.logger(label: "voco.ingestd")
        let options = try server.serverOptions(listen: try listenAddress(), defaultBodyBytes: 64 << 20)
        let (store, answering) = try ingest.open()
        let metrics = ServerMetrics()
        let module = try IngestModule(store: store, model: answering, options: daemonOptions(), server: options, metrics: metrics, logger: logger)
        let application = ServerFoundation.buildApplication(options: options, modules: [module], metrics: metrics, logger: logger,
                                                            onListening: server.onListening(logger: logger))
        // A batch handed back at shutdown may still be computing on its thread; what it would
        // still commit a retry commits too: the process exits without waiting for it.
        serveUntilSignalled(application, options: options, logger: logger)
    }
}
