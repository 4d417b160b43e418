import Foundation
import SafeTensors
@testable import VoCoStore
@testable import VoCoStoreLMDB

// MARK: - Temporary stores

func temporaryDirectory(_ name: String = "store") -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("voco-store-tests-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

/// A small synthetic model: 2 layers, 2 KV heads of 8, k = 2.
func tinyModel(dtype: ValueType = .f16, seed: UInt64 = 0, layers: Int = 2) -> ModelDescriptor {
    SyntheticKV.model(layers: layers, kvHeads: 2, headDim: 8, tokensPerImage: 2, dtype: dtype, seed: seed)
}

func tinyCache(_ n: Int, model: ModelDescriptor, tokens: Int = 2) -> KVTensors {
    SyntheticKV.make(layers: model.layers, tokens: tokens, kvHeads: model.kvHeads, headDim: model.headDim,
                     firstPosition: 5, seed: UInt64(n), modelSeed: 7)
}

/// A new LMDB store at a fresh path with `models` registered.
func makeStore(codec: CodecSettings = .default, models: [ModelDescriptor] = [tinyModel()],
               configure: (inout LMDBOptions) -> Void = { _ in }) throws -> CacheStore {
    var options = LMDBOptions()
    configure(&options)
    let store = try LMDBStore.open(path: temporaryDirectory(), options: StoreOptions(create: true, codec: codec), lmdb: options)
    for model in models { try store.register(model) }
    return store
}

extension CacheStore {
    /// The LMDB backend of a store the tests made.
    var lmdb: LMDBStore { backend as! LMDBStore }
    var path: String { location }
    var mapSize: Int { lmdb.mapSize }
}

/// `values` rounded to `dtype` and back: what a lossless record gives back.
func rounded(_ values: [Float], to dtype: ValueType) -> [Float] {
    switch dtype {
    case .f32: return values
    case .f16: return values.map { Float(Float16($0)) }
    case .bf16: return values.map { bfloat16BitsToFloat(floatToBFloat16Bits($0)) }
    }
}

// MARK: - Other processes

/// The `voco` executable built next to the test bundle (VOCO_EXECUTABLE overrides).
func vocoExecutable() -> String {
    if let path = ProcessInfo.processInfo.environment["VOCO_EXECUTABLE"] { return path }
    let bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    return bundle.appendingPathComponent("voco").path
}

struct ProcessResult {
    var status: Int32
    var output: String
    var error: String
    /// Set when the process was killed by a signal (`status` is then the signal number).
    var signaled = false
    /// Set when it ran past its timeout and was killed.
    var timedOut = false
}

/// Runs a program to completion, capturing stdout and stderr.
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, timeout: TimeInterval? = nil) throws -> ProcessResult {
    let process = try startProcess(executable, arguments, environment: environment)
    return try process.finish(timeout: timeout)
}

final class RunningProcess {
    let process = Process()
    private let out = Pipe(), err = Pipe()
    private var outData = Data(), errData = Data()
    private let group = DispatchGroup()

    init(_ executable: String, _ arguments: [String], environment: [String: String]?) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drain both pipes while the process runs so it never blocks on a full pipe.
        for (pipe, isOut) in [(out, true), (err, false)] {
            group.enter()
            DispatchQueue.global().async {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                if isOut { self.outData = data } else { self.errData = data }
                self.group.leave()
            }
        }
    }

    var isRunning: Bool { process.isRunning }

    func finish(timeout: TimeInterval? = nil) throws -> ProcessResult {
        var timedOut = false
        if let timeout {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning, Date() < deadline { usleep(2000) }
            if process.isRunning {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
            }
        }
        process.waitUntilExit()
        group.wait()
        return ProcessResult(status: process.terminationStatus, output: String(decoding: outData, as: UTF8.self),
                             error: String(decoding: errData, as: UTF8.self),
                             signaled: process.terminationReason == .uncaughtSignal, timedOut: timedOut)
    }
}

func startProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> RunningProcess {
    try RunningProcess(executable, arguments, environment: environment)
}

func voco(_ arguments: String...) throws -> ProcessResult {
    try runProcess(vocoExecutable(), arguments)
}

func voco(_ arguments: [String]) throws -> ProcessResult {
    try runProcess(vocoExecutable(), arguments, timeout: 300)
}

/// Reads a little-endian Float32 file.
func readFloats(_ path: String) throws -> [Float] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return data.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
}

// MARK: - Threads

final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

final class FailureLog: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var messages: [String] = []
    func add(_ message: String) { lock.withLock { messages.append(message) } }
}
