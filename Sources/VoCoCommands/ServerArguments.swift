import ArgumentParser
import Foundation
import Hummingbird
import Logging
import VoCoServer

// MARK: - What every server command (`voco ingestd`, `voco serve`) takes and does alike

/// `--port-file`, `--token-file`, `--log-format`, `--log-level`, `--max-body-bytes`.
struct ServerArguments: ParsableArguments {
    @Option(help: "Write the port once listening to this file (useful with port 0).")
    var portFile: String?

    @Option(help: "A file holding the bearer token every route but /healthz requires (not readable by others).")
    var tokenFile: String?

    @Option(help: "Largest request body, in bytes (default: voco ingestd 64 MiB, voco serve 1 MiB).")
    var maxBodyBytes: Int?

    @Option(help: "json (one object per line) or text.")
    var logFormat = "json"

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
        guard ["json", "text"].contains(logFormat) else { throw ValidationError("--log-format must be json or text") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level '\(logLevel)'") }
        if let maxBodyBytes { try require("max-body-bytes", maxBodyBytes, in: 1...(1 << 34)) }
    }

    /// `--listen` parsed, with the command's default port.
    static func listenAddress(_ listen: String, defaultPort: Int) throws -> (host: String, port: Int) {
        do { return try ServerOptions.parseListen(listen, defaultPort: defaultPort) } catch { throw ValidationError("\(error)") }
    }

    /// Bootstraps logging as asked; the server's logger.
    func logger(label: String) -> Logger {
        let (format, level) = (logFormat, Logger.Level(rawValue: logLevel) ?? .info)
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == "json" ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }

    /// The server's options: the address, the body limit and the token from `--token-file`.
    func serverOptions(listen: (host: String, port: Int), defaultBodyBytes: Int, shutdownTimeout: Duration = .seconds(10)) throws -> ServerOptions {
        var server = ServerOptions(host: listen.host, port: listen.port, maximumBodyBytes: maxBodyBytes ?? defaultBodyBytes,
                                   shutdownTimeout: shutdownTimeout)
        if let tokenFile { server.token = try ServerOptions.readToken(file: tokenFile) }
        return server
    }

    /// Writes the bound port to `--port-file`, when given.
    func onListening(logger: Logger) -> @Sendable (Int) async -> Void {
        let portFile = self.portFile
        return { port in
            guard let portFile else { return }
            do { try Data("\(port)\n".utf8).write(to: URL(fileURLWithPath: portFile), options: .atomic) } catch {
                logger.error("cannot write the port file", metadata: ["path": "\(portFile)", "error": "\(error)"])
            }
        }
    }
}

/// Runs `application` until SIGTERM or SIGINT (a graceful shutdown), then `afterStop`, then
/// exits: 0, or 1 when the server stopped on an error (the address in use...). It leaves with
/// `_exit`, without the C libraries' exit handlers: OpenBLAS's waits for its threads, and hangs
/// while a GEMM is in flight on a thread the server no longer waits for.
func serveUntilSignalled(_ application: some ApplicationProtocol, options: ServerOptions, logger: Logger,
                         afterStop: () -> Void = {}) -> Never {
    var status: Int32 = 0
    do {
        try runBlocking { try await ServerFoundation.run(application, options: options, logger: logger) }
        afterStop()
        logger.info("stopped")
    } catch {
        logger.critical("the server stopped on an error", metadata: ["error": "\(error)"])
        let advice = error is ServerError ? "; pass --listen with another address or port" : ""
        FileHandle.standardError.write(Data("Error: \(error)\(advice)\n".utf8))
        status = 1
    }
    fflush(stdout)
    fflush(stderr)
    _exit(status)
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
