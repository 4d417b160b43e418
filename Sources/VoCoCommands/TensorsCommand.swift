import ArgumentParser
import Foundation
import SafeTensors

/// `voco tensors FILE`: lists the tensors of a safetensors file or checkpoint directory.
struct TensorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tensors",
        abstract: "List the tensors (name, dtype, shape) of a safetensors file or checkpoint directory."
    )

    @Argument(help: "A .safetensors file or a directory of them.")
    var path: String

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("\(path): no such file or directory")
        }
        let views = isDirectory.boolValue
            ? try TensorDirectory(directory: path).files.flatMap(\.tensors)
            : try SafeTensorsFile(path: path).tensors
        if json {
            let rows = views.map { ["name": $0.name, "dtype": $0.dtype.rawValue, "shape": $0.shape] as [String: Any] }
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for v in views { print("\(v.name)\t\(v.dtype.rawValue)\t\(v.shape)") }
        }
    }
}
