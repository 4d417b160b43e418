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

    @Option(help: "Address to listen on: HOST, HOST:PORT, :PORT or [IPv6]:PORT (default 127.0.0.1:\(Self.defaultPort); port 0 = any free port).")
    var listen = "\(ServerOptions.defaultHost):\(Self.defaultPort)"

    @Option(help: "Write the port once listening to this file (useful with port 0).")
    var portFile: String?

    @Option(help: "A file holding the bearer token every route but /healthz requires (not readable by others).")
    var tokenFile: String?

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

    @Option(help: "Largest request body, in bytes.")
    var maxBodyBytes = 64 << 20

    @Flag(help: "Only accept uploads and spool files into the store's queue; other daemons on the store compress them.")
    var noWorker = false

    @Option(help: "json (one object per line) or text.")
    var logFormat = "json"

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    static let defaultPort = 8390

    func validate() throws {
        _ = try listenAddress()
        guard ["json", "text"].contains(logFormat) else { throw ValidationError("--log-format must be json or text") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level '\(logLevel)'") }
        guard (1...(1 << 34)).contains(maxBodyBytes) else { throw ValidationError("--max-body-bytes must be 1 to \(1 << 34)") }
        if let problem = daemonOptions().problem() { throw ValidationError(problem) }
    }

    func listenAddress() throws -> (host: String, port: Int) {
        do { return try ServerOptions.parseListen(listen, defaultPort: Self.defaultPort) } catch { throw ValidationError("\(error)") }
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
        let (format, level) = (logFormat, Logger.Level(rawValue: logLevel) ?? .info)
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == "json" ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "voco.ingestd")
        let (host, port) = try listenAddress()
        var server = ServerOptions(host: host, port: port, maximumBodyBytes: maxBodyBytes)
        if let tokenFile { server.token = try ServerOptions.readToken(file: tokenFile) }
        let (store, answering) = try ingest.open()
        let metrics = ServerMetrics()
        let module = try IngestModule(store: store, model: answering, options: daemonOptions(), server: server, metrics: metrics, logger: logger)
        let portFile = self.portFile
        let application = ServerFoundation.buildApplication(options: server, modules: [module], metrics: metrics, logger: logger) { port in
            guard let portFile else { return }
            do { try Data("\(port)\n".utf8).write(to: URL(fileURLWithPath: portFile), options: .atomic) } catch {
                logger.error("cannot write the port file", metadata: ["path": "\(portFile)", "error": "\(error)"])
            }
        }
        let options = server
        var status: Int32 = 0
        do {
            try runBlocking { try await ServerFoundation.run(application, options: options, logger: logger) }
            logger.info("stopped")
        } catch {
            logger.critical("the server stopped on an error", metadata: ["error": "\(error)"])
            let advice = error is ServerError ? "; pass --listen with another address or port" : ""
            FileHandle.standardError.write(Data("Error: \(error)\(advice)\n".utf8))
            status = 1
        }
        // A batch handed back at shutdown may still be computing on its thread; what it would
        // still commit a retry commits too. Exit now, without the C libraries' exit handlers:
        // OpenBLAS's waits for its threads, and hangs while a GEMM is in flight.
        fflush(stdout)
        fflush(stderr)
        _exit(status)
    }
}

/// Runs async work to completion from a synchronous command.
func runBlocking(_ body: @escaping @Sendable () async throws -> Void) throws {
    final class Outcome: @unchecked Sendable { var error: Error? }
    let outcome = Outcome(), done = DispatchSemaphore(value: 0)
    Task {
        do { try await body() } catch { outcome.error = error }
        done.signal()
    }
    done.wait()
    if let error = outcome.error { throw error }
}
