import ArgumentParser
import Foundation
import VoCoPipeline
import VoCoStore

/// `voco ingest PATH... --collection NAME`: compresses image folders into a store, once.
struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Compress image files and folders into a store's collection (each image once per model).",
        discussion: """
            Walks PATHs recursively in sorted order; JPEG and PNG are recognised by content, other \
            files are skipped. An image the store already holds for the model is only added to the \
            collection. Each batch is one transaction: an interrupted run loses at most the batch in \
            flight, and running it again finishes the job. SIGINT or SIGTERM stop after the batch \
            in flight is written.

            Exit codes: 0 every image is in the collection (files that are not images were skipped); \
            2 the run finished but some files or folders failed (listed in the summary); 1 the run \
            could not go on (store, model); 64 bad arguments; 130 stopped by a signal.
            """
    )

    @Argument(help: "Image files and folders (walked recursively).")
    var paths: [String]

    @Option(help: "The collection the images join (created when new).")
    var collection: String

    @OptionGroup var ingest: IngestArguments

    @Flag(help: "JSON lines: progress objects, then the summary (the default when stdout is not a terminal).")
    var json = false

    static let exitSomeFailed: Int32 = 2
    static let exitInterrupted: Int32 = 130

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("give at least one file or folder to ingest") }
        do { try CollectionName.validate(collection) } catch { throw ValidationError("--collection: \(error)") }
    }

    func run() throws {
        let stop = StopSignals()
        let output = IngestOutput(json: json || isatty(STDOUT_FILENO) == 0)
        let (store, answering) = try ingest.open()
        let ingestor = try Ingestor(store: store, model: answering, options: ingest.options)
        let summary = try ingestor.ingest(paths: paths, into: collection, shouldStop: { stop.received }, onProgress: output.progress)
        try output.summary(summary)
        if summary.stopped { throw ExitCode(Self.exitInterrupted) }
        if summary.counts.failed > 0 { throw ExitCode(Self.exitSomeFailed) }
    }
}

// MARK: - Stopping between batches

/// SIGINT and SIGTERM set a flag the ingest checks between batches; a second signal ends the
/// process at once (the batch in flight is then lost, as in a crash, and nothing else).
final class StopSignals: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var sources: [DispatchSourceSignal] = []

    init() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                let seen = self.lock.withLock { () -> Int in self.count += 1; return self.count }
                if seen > 1 { _exit(IngestCommand.exitInterrupted) }
                FileHandle.standardError.write(Data("\nstopping after the batch in flight (signal again to stop now)\n".utf8))
            }
            source.resume()
            sources.append(source)
        }
    }

    var received: Bool { lock.withLock { count > 0 } }
}
