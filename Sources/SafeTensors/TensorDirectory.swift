import Foundation

/// The weights of a checkpoint directory: one `model.safetensors`, shards listed by
/// `model.safetensors.index.json`, or (failing both) every `*.safetensors` file in it.
/// Lookups go to the file that holds the tensor; nothing is read until a tensor is used.
public final class TensorDirectory: @unchecked Sendable {
    public let directory: String
    public let files: [SafeTensorsFile]
    private let location: [String: (file: Int, view: TensorView)]

    public init(directory: String) throws {
        self.directory = directory
        let fm = FileManager.default
        let indexPath = (directory as NSString).appendingPathComponent("model.safetensors.index.json")
        let singlePath = (directory as NSString).appendingPathComponent("model.safetensors")
        var paths: [String]
        if fm.fileExists(atPath: indexPath) {
            let data: Data
            var info = stat()
            if stat(indexPath, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
                throw SafeTensorsError.cannotOpen(path: indexPath, reason: "not a regular file")
            }
            do { data = try Data(contentsOf: URL(fileURLWithPath: indexPath)) } catch {
                throw SafeTensorsError.cannotOpen(path: indexPath, reason: error.localizedDescription)
            }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let weightMap = object["weight_map"] as? [String: String]
            else {
                throw SafeTensorsError.invalidHeader(path: indexPath, reason: "no 'weight_map' object of tensor name -> file name")
            }
            paths = Array(Set(weightMap.values)).sorted().map { (directory as NSString).appendingPathComponent($0) }
        } else if fm.fileExists(atPath: singlePath) {
            paths = [singlePath]
        } else {
            let names = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
            paths = names.filter { $0.hasSuffix(".safetensors") }.sorted().map { (directory as NSString).appendingPathComponent($0) }
            guard !paths.isEmpty else {
                throw SafeTensorsError.cannotOpen(path: directory, reason: "no model.safetensors, model.safetensors.index.json or *.safetensors file")
            }
        }
        files = try paths.map { try SafeTensorsFile(path: $0) }
        var location: [String: (Int, TensorView)] = [:]
        for (i, file) in files.enumerated() {
            for view in file.tensors {
                if location[view.name] != nil {
                    throw SafeTensorsError.invalidHeader(path: file.path, reason: "tensor '\(view.name)' also appears in another shard")
                }
                location[view.name] = (i, view)
            }
        }
        self.location = location
    }

    public var names: [String] { location.keys.sorted() }

    public subscript(name: String) -> TensorView? { location[name]?.view }

    /// The tensor named `name`, checked against `shape` when given; errors name the tensor.
    public func tensor(_ name: String, shape: [Int]? = nil) throws -> TensorView {
        guard let (file, view) = location[name] else {
            throw SafeTensorsError.missingTensor(name: name, source: directory)
        }
        if let shape, view.shape != shape {
            throw SafeTensorsError.shapeMismatch(tensor: name, source: files[file].path, expected: shape, actual: view.shape)
        }
        return view
    }

    /// The floating-point dtype most weights use (what "the model's dtype" means).
    public var dominantFloatType: DType? {
        var bytesByType: [DType: Int] = [:]
        for file in files { for t in file.tensors where t.dtype.isFloatingPoint { bytesByType[t.dtype, default: 0] += t.bytes.count } }
        return bytesByType.max { $0.value < $1.value }?.key
    }
}
