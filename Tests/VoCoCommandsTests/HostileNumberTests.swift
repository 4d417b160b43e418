import Foundation
import Testing

// MARK: - Hostile numbers on every numeric option, through the built executables

/// One run of `voco` or `voco-bench` and what it must do: exit (never a signal) with an error
/// naming `mentions`, or, when `mentions` is nil, succeed.
struct HostileRun: CustomTestStringConvertible, Sendable {
    let program: String
    let arguments: [String]
    let mentions: String?
    var testDescription: String { ([program] + arguments).joined(separator: " ") }
}

/// Where the test bundle, the executables next to it and the repository are.
enum Paths {
    static let executables = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let model = repository + "/Models/voco-shapes"
    static let sample = repository + "/Samples/00003.png"
    static let scratch: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("voco-hostile-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()
    /// A store of 3 synthetic records in collection "synthetic", made once.
    static let store: String = {
        let path = scratch + "/store"
        _ = try? run("voco", ["debug", "store-fill", "--store", path, "--create", "--records", "3"])
        return path
    }()
    static let fifo: String = {
        let path = scratch + "/image.fifo"
        mkfifo(path, 0o600)
        return path
    }()
}

struct RunResult {
    var status: Int32
    var signalled: Bool
    var timedOut: Bool
    var error: String
}

/// Runs `program` to completion (killed after `limit` seconds), stdout discarded, stderr kept.
func run(_ program: String, _ arguments: [String], limit: TimeInterval = 60) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Paths.executables + "/" + program)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["VOCO_MODEL"] = Paths.model
    environment["VOCO_THREADS"] = "1"
    process.environment = environment
    let errorFile = Paths.scratch + "/stderr-\(UUID().uuidString)"
    _ = FileManager.default.createFile(atPath: errorFile, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errorFile) }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: errorFile))
    process.standardError = handle
    process.standardOutput = FileHandle.nullDevice
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(limit)
    while process.isRunning && Date() < deadline { usleep(5_000) }
    let timedOut = process.isRunning
    if timedOut { process.terminate() }
    process.waitUntilExit()
    try handle.close()
    let error = (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? ""
    return RunResult(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                     timedOut: timedOut, error: error)
}

// MARK: - The table

enum HostileTable {
    static let max = String(Int.max), min = String(Int.min), past = "9223372036854775808"

    /// `--option=value` for every value (the `=` form lets negative numbers through as values).
    static func option(_ program: String, _ command: [String], _ option: String, _ values: [String],
                       mentions: String? = nil, extra: [String] = []) -> [HostileRun] {
        values.map { HostileRun(program: program, arguments: command + extra + ["--\(option)=\($0)"], mentions: mentions ?? "--\(option)") }
    }

    static var voco: [HostileRun] {
        let model = Paths.model, store = Paths.store
        let ask = ["ask", "--image", Paths.sample]
        var rows: [HostileRun] = []
        // voco ask (and the sampling options voco debug generate shares).
        rows += option("voco", ask, "max-tokens", ["0", "-1", min, past], extra: ["Q?"])
        rows += option("voco", ask, "max-tokens", [max, "513"], mentions: "max_position_embeddings", extra: ["Q?"])
        rows += option("voco", ask, "temperature", ["-1", "nan", "inf", "1e39"], extra: ["Q?"])
        rows += option("voco", ask, "top-p", ["0", "-0.5", "1.5", "nan"], extra: ["Q?"])
        rows += option("voco", ask, "seed", ["-1", "18446744073709551616"], extra: ["Q?"])
        rows.append(HostileRun(program: "voco", arguments: ["ask"] + Array(repeating: ["--image", Paths.sample], count: 5).flatMap { $0 } + ["Q?"],
                               mentions: "--allow-over-max-images"))
        rows.append(HostileRun(program: "voco", arguments: ["ask", "--allow-over-max-images"]
                               + Array(repeating: ["--image", "/nonexistent.png"], count: 600).flatMap { $0 } + ["Q?"],
                               mentions: "max_position_embeddings"))
        rows.append(HostileRun(program: "voco", arguments: ["ask", "--image", Paths.fifo, "Q?"], mentions: "FIFO"))
        // voco ask over a store (issue 14).
        rows += option("voco", ["ask", "--collection", "c"], "cache-bytes", ["-1", min, past], extra: ["Q?"])
        rows.append(HostileRun(program: "voco", arguments: ["ask", "--digest", "zz", "Q?"], mentions: "--digest"))
        rows.append(HostileRun(program: "voco", arguments: ["ask", "--image", "/dev/zero", "Q?"], mentions: "character device"))
        rows.append(HostileRun(program: "voco", arguments: ["ask", "--image", Paths.scratch, "Q?"], mentions: "a directory"))
        // voco eval
        let eval = ["eval", "--split", Paths.repository + "/Samples"]
        rows += option("voco", eval, "max-tokens", ["0", "-1", min])
        rows += option("voco", eval, "limit", ["-1", min, past])
        // voco inspect ls
        let ls = ["inspect", "ls", "synthetic", "--store", store]
        rows += option("voco", ls, "offset", ["-1", min, past])
        rows += option("voco", ls, "limit", ["0", "-1", min, past])
        rows.append(HostileRun(program: "voco", arguments: ls + ["--offset=\(max)"], mentions: nil))
        rows.append(HostileRun(program: "voco", arguments: ls + ["--limit=\(max)"], mentions: nil))
        rows.append(HostileRun(program: "voco", arguments: ls + ["--offset=\(max)", "--limit=\(max)", "--json"], mentions: nil))
        // voco debug store-fill
        let fill = ["debug", "store-fill", "--store", Paths.scratch + "/fill", "--create"]
        for name in ["layers", "kv-heads", "head-dim", "tokens"] { rows += option("voco", fill, name, ["0", "-1", "65537", max, min]) }
        rows.append(HostileRun(program: "voco", arguments: fill + ["--layers=65536", "--head-dim=65536"], mentions: "2^26"))
        rows += option("voco", fill, "records", ["-1", max, min])
        rows += option("voco", fill, "first", ["-1", min])
        rows += option("voco", fill, "first", [max], extra: ["--records=5"])
        rows += option("voco", fill, "batch", ["0", "-1", max])
        rows += option("voco", fill, "pause-ms", ["-1", max, "3600001"])
        rows += option("voco", fill, "model-seed", ["-1", "18446744073709551616"])
        rows += option("voco", fill, "codec", ["q3"])
        rows += option("voco", fill, "dtype", ["F8"])
        // voco debug preprocess-image
        let preprocess = ["debug", "preprocess-image", "--model", model, "-o", Paths.scratch + "/pixels.safetensors", Paths.sample]
        rows += option("voco", preprocess, "max-pixels", ["0", "-1", max, min])
        // voco debug generate / query
        let generate = ["debug", "generate", "--model", model, "--tokens", "3,4"]
        rows += option("voco", generate, "max-tokens", ["0", min])
        rows += option("voco", generate, "max-tokens", [max], mentions: "max_position_embeddings")
        rows += option("voco", generate, "tokens", ["-1", max, past], mentions: "token")
        rows += option("voco", ["debug", "query", "--model", model, "--tokens", "3", "--out", Paths.scratch + "/logits.safetensors"],
                       "images", ["-1", past], mentions: "--images")
        // voco serve: every numeric option refused by name before anything opens
        let serve = ["serve", "--store", store, "--model", model, "--listen", "127.0.0.1:0"]
        for name in ["cache-bytes", "max-question-chars", "max-answer-tokens", "max-images", "compute-threads", "max-waiting",
                     "max-body-bytes", "shutdown-grace"] {
            rows += option("voco", serve, name, ["-1", max, min, past])
        }
        for name in ["max-question-chars", "max-answer-tokens", "max-images", "compute-threads", "max-body-bytes"] {
            rows += option("voco", serve, name, ["0"])
        }
        rows += option("voco", ["serve", "--store", store], "listen", ["127.0.0.1:65536", "127.0.0.1:-1", ":\(max)", "[::1"])
        // voco debug decode: any id is a correct result (ids outside the vocabulary decode to nothing).
        rows.append(HostileRun(program: "voco", arguments: ["debug", "decode", "--tokenizer", model, "--", "-1", max, min, "491"], mentions: nil))
        return rows
    }

    static var bench: [HostileRun] {
        var rows: [HostileRun] = []
        rows += option("voco-bench", ["convert"], "elements", ["0", "-1", max, min])
        for (name, values) in [("hidden", ["0", max]), ("layers", ["0", max]), ("heads", ["0", max, "3"]), ("kv-heads", ["0", "3", max]),
                               ("intermediate", ["0", max]), ("vocab", ["4", max, min]), ("vision-hidden", ["0", max, "129"]),
                               ("vision-layers", ["1", max]), ("image", ["0", max, "225"]), ("patch", ["0", max, "13"]),
                               ("batch", ["-1", max]), ("prompt", ["0", max]), ("decode", ["0", max]), ("threads", ["0", "-1", max])] {
            rows += option("voco-bench", ["engine"], name, values)
        }
        rows += option("voco-bench", ["engine"], "dtype", ["I8"])
        rows += option("voco-bench", ["engine"], "policy", ["eager"])
        rows.append(HostileRun(program: "voco-bench", arguments: ["engine", "--hidden=65536", "--heads=512", "--kv-heads=512",
                                                                 "--intermediate=1048576", "--layers=1024"], mentions: "2^36"))
        rows += option("voco-bench", ["images"], "width", ["0", "-1", max, "65501"])
        rows += option("voco-bench", ["images"], "height", ["0", max], extra: ["--width=65500"])
        rows += option("voco-bench", ["images"], "size", ["0", max])
        rows += option("voco-bench", ["images"], "iterations", ["0", max])
        rows += option("voco-bench", ["store"], "records", ["0", max])
        rows += option("voco-bench", ["store"], "batch", ["0", max])
        rows += option("voco-bench", ["store"], "level", ["0", "99", min])
        rows += option("voco-bench", ["store"], "distinct", ["0", max])
        rows += option("voco-bench", ["store"], "repeats", ["0", max])
        rows += option("voco-bench", ["tokenizer"], "bytes", ["0", "-1", max])
        rows += option("voco-bench", ["serve"], "requests", ["0", "-1", max])
        rows += option("voco-bench", ["serve"], "seconds", ["0", max])
        rows += option("voco-bench", ["serve"], "clients", ["0", "-1", max, "1,x"])
        rows += option("voco-bench", ["serve"], "compute-threads", ["0", max])
        rows += option("voco-bench", ["serve"], "max-tokens", ["0", max])
        let codecs = ["codecs", "--split", Paths.repository + "/Samples"]
        rows += option("voco-bench", codecs, "limit", ["0", "-1", min])
        rows += option("voco-bench", ["haystack", "--data", Paths.scratch], "limit", ["0", "-1", min])
        rows += option("voco-bench", ["cached"], "rounds", ["0", "-1", min])
        rows += option("voco-bench", codecs, "codec", ["hq:k=9", "q3"])
        return rows
    }
}

@Suite(.serialized) struct HostileNumberTests {
    static let rows = HostileTable.voco + HostileTable.bench

    @Test func tableCoversEveryProgram() {
        // The counts docs/reliability.md records; change both together.
        #expect(HostileTable.voco.count == 132 && HostileTable.bench.count == 90, "\(HostileTable.voco.count) + \(HostileTable.bench.count)")
    }

    @Test(arguments: rows)
    func exitsWithAnErrorNeverASignal(_ row: HostileRun) throws {
        let result = try run(row.program, row.arguments)
        #expect(!result.timedOut, "still running after 60 s")
        #expect(!result.signalled, "killed by signal \(result.status): \(result.error.suffix(300))")
        if let mentions = row.mentions {
            #expect(result.status != 0, "exit 0 for a value that cannot work")
            #expect(result.error.contains(mentions), "the error does not name \(mentions): \(result.error.prefix(300))")
        } else {
            #expect(result.status == 0, "\(result.error.prefix(300))")
        }
    }
}
