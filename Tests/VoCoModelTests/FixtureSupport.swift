import Foundation
import SafeTensors
import Testing
@testable import VoCoModel
import VoCoCompute

// MARK: - Committed fixtures (Tools/fixtures/make_engine_fixtures.py)

enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    /// `tiny-llava`, `tiny-llava-f16` or `tiny-llava-bf16`.
    static func model(_ name: String = "tiny-llava") -> String { directory + "/" + name }

    static func expected(_ suffix: String = "") throws -> SafeTensorsFile {
        try SafeTensorsFile(path: directory + "/engine-expected\(suffix).safetensors")
    }

    static func floats(_ name: String, _ suffix: String = "") throws -> [Float] { try expected(suffix).tensor(name).floats() }
    static func ints(_ name: String) throws -> [Int] { try floats(name).map { Int($0) } }

    /// The first `images` of the three fixture images, `[images][3][32][32]`.
    static func pixels(_ images: Int = 3) throws -> [Float] { Array(try floats("pixel_values").prefix(images * 3 * 32 * 32)) }
    static func text() throws -> [Int] { try ints("text_tokens") }

    /// Every backend: OpenBLAS (the reference) and VoCoKernels at every ISA level; a level this
    /// CPU lacks is reported as a skipped (cancelled) test case by `engine`.
    static let backends: [ComputeBackend] = [.openBLAS] + KernelISA.allCases.map { .kernels($0) }

    /// `backend`, or the test case cancelled (reported as skipped) when this CPU cannot run it.
    static func available(_ backend: ComputeBackend) throws -> ComputeBackend {
        if case let .kernels(isa?) = backend, !isa.isSupported {
            try Test.cancel("skipped: this CPU cannot run \(isa) kernels")
        }
        return backend
    }

    static func engine(_ name: String = "tiny-llava", policy: WeightPolicy = .default,
                       backend: ComputeBackend = .default) throws -> VoCoEngine {
        try VoCoEngine(directory: model(name), options: LoadOptions(weightPolicy: policy, backend: available(backend)))
    }
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// The caches' keys (or values) in the fixtures' `[N][layers][P'][width]` layout.
func concatenated(_ caches: [VoCoCache], keys: Bool) -> [Float] { caches.flatMap { keys ? $0.keys : $0.values } }

// MARK: - Scratch directories

func temporaryDirectory(_ name: String = "engine-tests") -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A copy of a fixture model whose config.json is edited by `edit` (the parsed JSON object).
func editedModel(_ name: String = "tiny-llava", _ edit: (inout [String: Any]) -> Void) throws -> String {
    let dir = temporaryDirectory(name)
    let source = Fixtures.model(name)
    for file in try FileManager.default.contentsOfDirectory(atPath: source) where file != "config.json" {
        try FileManager.default.copyItem(atPath: source + "/" + file, toPath: dir + "/" + file)
    }
    let data = try Data(contentsOf: URL(fileURLWithPath: source + "/config.json"))
    var json = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    edit(&json)
    try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .prettyPrinted])
        .write(to: URL(fileURLWithPath: dir + "/config.json"))
    return dir
}

/// Rewrites the tensors of `file` into `path`, renamed by `rename` (nil drops a tensor).
func rewriteTensors(_ file: SafeTensorsFile, to path: String, rename: (String) -> String?) throws {
    var writer = SafeTensorsWriter(metadata: ["format": "pt"])
    for t in file.tensors {
        guard let name = rename(t.name) else { continue }
        try writer.add(name, dtype: t.dtype, shape: t.shape, bytes: Data(t.bytes))
    }
    try writer.write(to: path)
}
