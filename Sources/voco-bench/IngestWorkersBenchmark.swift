import ArgumentParser
import Foundation
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB
import VoCoStoreRedis
#if canImport(Glibc)
import Glibc
#endif

/// `voco-bench redis --ingest`: images/s of `voco ingestd` worker processes draining one
/// collection's job queue: an LMDB store with one worker (the baseline), then a store on the
/// cluster with one worker and with two (separate processes, each with its own connections).
/// The jobs (the first --count image files) are enqueued before the workers start; the clock
/// runs from the first claim to the last job done, so process start-up is not counted.
struct IngestWorkersBenchmark {
    let seeds: String
    let options: RedisBenchmark

    struct Run {
        var rate: Double
        var compressed: [Int]
    }

    func run() throws {
        guard let folder = options.images else { throw ValidationError("--ingest needs --images DIR (e.g. python Tools/bench/shapes_images.py --count 1000 --out DIR)") }
        guard (1...100_000).contains(options.count), (1...1024).contains(options.ingestBatch) else {
            throw ValidationError("--count must be in 1...100000 and --ingest-batch in 1...1024")
        }
        let files = Array(FileWalk.collect([folder]).files.prefix(options.count))
        guard !files.isEmpty else { throw ValidationError("no files under \(folder)") }
        let voco = options.voco ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("voco").path
        guard FileManager.default.isExecutableFile(atPath: voco) else { throw ValidationError("no voco executable at \(voco) (build it, or give --voco)") }
        let model = options.model ?? DefaultModel.path()
        print("voco-bench redis --ingest: \(files.count) images from \(folder), voco ingestd workers (--batch \(options.ingestBatch)), model \(model)")
        print("\(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage()); best of \(options.repeats) runs; clock: first claim to last job done")
        var rows = [["store", "workers", "images/s (best)", "runs", "compressed per worker (best run)"]]
        let configurations: [(name: String, redis: Bool, workers: Int)] = [("LMDB", false, 1), ("Redis Cluster", true, 1), ("Redis Cluster", true, 2)]
        for configuration in configurations {
            var runs: [Run] = []
            for _ in 0..<options.repeats {
                runs.append(try measure(files: files, voco: voco, model: model, redis: configuration.redis, workers: configuration.workers))
            }
            let best = runs.max { $0.rate < $1.rate }!
            rows.append([configuration.name, "\(configuration.workers)", String(format: "%.1f", best.rate),
                         runs.map { String(format: "%.1f", $0.rate) }.joined(separator: ", "),
                         best.compressed.map(String.init).joined(separator: " + ")])
            print("\(configuration.name), \(configuration.workers) worker(s): \(rows.last![3]) images/s")
        }
        printTable(rows)
    }

    private func measure(files: [String], voco: String, model: String, redis: Bool, workers: Int) throws -> Run {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("voco-bench-ingestd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let location = redis ? "redis://\(seeds)/bench-ingest-\(UUID().uuidString.prefix(13))" : scratch + "/store"
        func daemon(_ name: String, _ extra: [String]) throws -> Daemon {
            try Daemon(voco, ["ingestd", "--store", location, "--model", model, "--uploads", scratch + "/uploads", "--listen", "127.0.0.1:0",
                              "--port-file", scratch + "/\(name).port"] + extra, logs: scratch + "/\(name)", ready: scratch + "/\(name).port")
        }
        // A daemon without a worker makes the store and registers the model; then the jobs go in.
        let intake = try daemon("intake", ["--no-worker"])
        intake.terminate()
        let store = redis ? try RedisStore.open(url: location) : try LMDBStore.open(path: location, options: StoreOptions())
        defer { if redis { try? (store.backend as? RedisStore)?.destroy() } }
        guard let fingerprint = try store.read({ try $0.models() }).first?.fingerprint else { throw ValidationError("the intake daemon registered no model") }
        try store.jobs.enqueue(files.map { IngestJob(collection: "bench", source: $0, model: fingerprint) })

        let started = try (0..<workers).map { try daemon("worker-\($0)", ["--batch", "\(options.ingestBatch)"]) }
        defer { started.forEach { $0.terminate() } }
        var first: UInt64?
        let deadline = Date().addingTimeInterval(3600)
        while Date() < deadline {
            let counts = try store.jobs.counts()
            let now = DispatchTime.now().uptimeNanoseconds
            if first == nil, counts.queued < files.count { first = now }
            if counts.done + counts.failed == files.count {
                guard counts.failed == 0 else { throw ValidationError("\(counts.failed) jobs failed (see \(scratch))") }
                let seconds = Double(now - first!) / 1e9
                started.forEach { $0.terminate() }
                return Run(rate: Double(files.count) / seconds, compressed: started.map(\.compressed))
            }
            usleep(10_000)
        }
        throw ValidationError("the workers did not finish within an hour")
    }
}

/// A `voco ingestd` child process, its stderr in a file; ready once it wrote its port file.
private final class Daemon {
    let pid: pid_t
    let errorPath: String
    private var exited = false

    init(_ executable: String, _ arguments: [String], logs: String, ready portFile: String) throws {
        errorPath = logs + ".err"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard status == 0 else { throw ValidationError("cannot start \(executable): \(String(cString: strerror(status)))") }
        self.pid = pid
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: portFile) || ((try? String(contentsOfFile: portFile, encoding: .utf8)) ?? "").isEmpty {
            var exitStatus: Int32 = 0
            if waitpid(pid, &exitStatus, WNOHANG) == pid || Date() > deadline {
                exited = true
                throw ValidationError("voco ingestd did not start: \((try? String(contentsOfFile: errorPath, encoding: .utf8))?.suffix(2000) ?? "")")
            }
            usleep(10_000)
        }
    }

    /// SIGTERM, then waits for the exit (once).
    func terminate() {
        guard !exited else { return }
        exited = true
        kill(pid, SIGTERM)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
    }

    /// Images this daemon compressed: the `compressed` counts of its batch log lines.
    var compressed: Int {
        ((try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { line -> Int? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["message"] as? String == "batch" else { return nil }
            return Int(object["compressed"] as? String ?? "")
        }.reduce(0, +)
    }
}

private func loadAverage() -> String {
    ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3).joined(separator: " ")
}
