import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreRedis

// MARK: - The cluster the tests use

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// `host:port[,...]` of the cluster $VOCO_REDIS_CLUSTER names (Tools/test starts one). Without
/// one the test is cancelled (a skip, saying why); a named cluster that does not answer fails.
func requireCluster() throws -> String {
    guard let seeds = ProcessInfo.processInfo.environment["VOCO_REDIS_CLUSTER"], !seeds.isEmpty else {
        let reason = "skipped: no Redis Cluster named; set VOCO_REDIS_CLUSTER=host:port (Tools/redis-cluster.sh start; Tools/test does both)"
        print(reason)
        try Test.cancel(Comment(rawValue: reason))
    }
    return seeds
}

/// A URL for a new store of its own on `seeds` (`name-<random>`), with extra query options.
func freshURL(_ seeds: String, _ name: String, options: String = "") -> String {
    "redis://\(seeds)/\(name)-\(UUID().uuidString.prefix(13))" + (options.isEmpty ? "" : "?\(options)")
}

/// A new store on `seeds` with `models` registered.
func makeRedisStore(_ seeds: String, _ name: String = "t", codec: CodecSettings = .default, models: [ModelDescriptor] = []) throws -> CacheStore {
    let store = try RedisStore.open(url: freshURL(seeds, name), options: StoreOptions(create: true, codec: codec))
    for model in models { try store.register(model) }
    return store
}

/// The same store opened again: another client, as another process would be.
func reopen(_ store: CacheStore, readOnly: Bool = false) throws -> CacheStore {
    try RedisStore.open(url: (store.backend as! RedisStore).url.description, options: StoreOptions(readOnly: readOnly))
}

extension CacheStore {
    var redis: RedisStore { backend as! RedisStore }
}

func smallModel(seed: UInt64 = 0) -> ModelDescriptor {
    SyntheticKV.model(layers: 2, kvHeads: 2, headDim: 8, tokensPerImage: 1, dtype: .f16, seed: seed)
}

func smallCache(_ n: Int, _ model: ModelDescriptor) -> KVTensors {
    SyntheticKV.make(layers: model.layers, tokens: model.tokensPerImage, kvHeads: model.kvHeads, headDim: model.headDim, seed: UInt64(n), modelSeed: 7)
}

// MARK: - A cluster of one's own

/// A 3-master, 3-replica cluster on free loopback ports (Tools/redis-cluster.sh), for tests that
/// kill nodes or change their settings; `stop` removes it.
final class PrivateCluster {
    let base: Int
    let directory: String
    /// Every node as a seed: a client must reach the cluster whichever node is down.
    var seeds: String { (base..<(base + 6)).map { "127.0.0.1:\($0)" }.joined(separator: ",") }

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") || which("redis-server") else {
            throw ProcessFailure("redis-server is not installed (Tools/deps.sh installs it)")
        }
        var lastError = ""
        for _ in 0..<4 {
            let base = Int.random(in: 21_000...29_000)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("voco-private-cluster-\(UUID().uuidString)").path
            let result = try run(repositoryRoot + "/Tools/redis-cluster.sh", ["start", "\(base)", directory])
            if result.status == 0 {
                (self.base, self.directory) = (base, directory)
                return
            }
            lastError = result.error
        }
        throw ProcessFailure("Tools/redis-cluster.sh start failed: \(lastError)")
    }

    func stop() {
        _ = try? run(repositoryRoot + "/Tools/redis-cluster.sh", ["stop", "\(base)", directory])
    }

    deinit { stop() }
}

private func which(_ program: String) -> Bool {
    (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
        FileManager.default.isExecutableFile(atPath: "\($0)/\(program)")
    }
}

// MARK: - Processes

struct ProcessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct Finished {
    var status: Int32
    var output: String
    var error: String
}

/// A child process started with posix_spawn (Foundation's Process can miss a child's exit when
/// many run at once; waitpid cannot). Output goes to files, so no pipe can fill up.
final class Spawned {
    let pid: pid_t
    private let out: String, err: String

    init(_ executable: String, _ arguments: [String]) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("voco-spawn-\(UUID().uuidString)").path
        (out, err) = (base + ".out", base + ".err")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard status == 0 else { throw ProcessFailure("cannot start \(executable): \(String(cString: strerror(status)))") }
        self.pid = pid
    }

    /// Waits for the exit; the status (128 + signal when killed) and both outputs.
    func wait() -> Finished {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: err) }
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Finished(status: code, output: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                        error: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }
}

/// Runs a program to completion.
func run(_ executable: String, _ arguments: [String]) throws -> Finished {
    try Spawned(executable, arguments).wait()
}

/// The `voco` executable built next to the test bundle.
func vocoExecutable() -> String {
    URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("voco").path
}

// MARK: - Threads

/// What threads report, collected under a lock.
final class Collector<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T] = []
    func add(_ item: T) { lock.withLock { items.append(item) } }
    var all: [T] { lock.withLock { items } }
}

/// Runs `body` on a thread of its own; `join` waits for it.
final class Worker: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    init(_ body: @escaping @Sendable () -> Void) {
        Thread { body(); self.done.signal() }.start()
    }
    func join() { done.wait() }
}
