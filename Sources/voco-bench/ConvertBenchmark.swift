import ArgumentParser
import Foundation
import SafeTensors
import VoCoCommands

/// Widening half-precision weights to Float32 on the fly: GB/s against a plain memcpy of the
/// same number of output bytes (the baseline).
struct ConvertBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "convert", abstract: "F16/BF16 -> F32 widening throughput.")

    @Option(help: "Elements per conversion.")
    var elements = 16 * 1024 * 1024

    func validate() throws {
        try OptionCheck.require("elements", elements, in: 1...(1 << 28), "three buffers of 10 bytes per element in all")
    }

    func run() {
        let source = (0..<elements).map { UInt16(truncatingIfNeeded: $0 &* 2654435761) & 0x7bff }
        var destination = [Float](repeating: 0, count: elements)
        let copySource = [Float](repeating: 1, count: elements)
        let outBytes = Double(elements * 4)
        let copy = bestSeconds {
            destination.withUnsafeMutableBufferPointer { d in
                copySource.withUnsafeBufferPointer { s in d.baseAddress!.update(from: s.baseAddress!, count: elements) }
            }
        }
        print("elements: \(elements)")
        print("memcpy f32 (baseline): \(formatted(outBytes / copy / 1e9)) GB/s written")
        for dtype in [DType.f16, .bf16] {
            let t = bestSeconds {
                source.withUnsafeBytes { s in
                    destination.withUnsafeMutableBufferPointer { d in
                        convertToFloat32(s.baseAddress!, dtype: dtype, count: elements, into: d.baseAddress!)
                    }
                }
            }
            print("\(dtype.rawValue) -> F32: \(formatted(outBytes / t / 1e9)) GB/s written (\(formatted(t / copy)) x memcpy time)")
        }
    }
}
