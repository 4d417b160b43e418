import Foundation
import Testing
@testable import SafeTensors

private func temporaryPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-tests-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

/// A file with an arbitrary JSON header and data section.
private func rawFile(header: String, data: [UInt8] = []) -> String {
    var bytes = Data()
    let json = Data(header.utf8)
    withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes.append(contentsOf: $0) }
    bytes.append(json)
    bytes.append(contentsOf: data)
    let path = temporaryPath("raw.safetensors")
    FileManager.default.createFile(atPath: path, contents: bytes)
    return path
}

@Suite struct SafeTensorsTests {
    @Test func roundTripsEveryFloatType() throws {
        let values: [Float] = [0, 1, -2.5, 65504, 1e-7, -0.1, .infinity, 3.140625]
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        try writer.add("a.f32", shape: [2, 4], floats: values, as: .f32)
        try writer.add("b.f16", shape: [8], floats: values, as: .f16)
        try writer.add("c.bf16", shape: [4, 2], floats: values, as: .bf16)
        try writer.add("ids", shape: [3], int64s: [1, 32000, -5])
        let path = temporaryPath("x.safetensors")
        try writer.write(to: path)

        let file = try SafeTensorsFile(path: path)
        #expect(file.metadata == ["format": "pt"])
        #expect(try file.tensor("a.f32").floats() == values)
        #expect(try file.tensor("a.f32").shape == [2, 4])
        let f16 = try file.tensor("b.f16").floats()
        #expect(f16 == values.map { Float(Float16($0)) })
        let bf16 = try file.tensor("c.bf16").floats()
        for (x, y) in zip(bf16, values) where y.isFinite { #expect(abs(x - y) <= abs(y) / 128) }
        #expect(try file.tensor("ids").floats() == [1, 32000, -5])
    }

    @Test func halfConversionIsExactForAllBitPatterns() {
        for bits in 0...UInt16.max {
            let expected = Float(Float16(bitPattern: bits))
            let actual = float16BitsToFloat(bits)
            if expected.isNaN { #expect(actual.isNaN) } else { #expect(actual == expected, "bits \(bits)") }
        }
    }

    /// The bulk (vectorised) widening agrees with the scalar one on every bit pattern, including
    /// a tail shorter than a vector and a source that is not 4-byte aligned.
    @Test(arguments: [DType.f16, .bf16])
    func bulkConversionIsExactForAllBitPatterns(dtype: DType) {
        let patterns = (0...Int(UInt16.max)).map { UInt16($0) } + [0x3c00, 0x7c01, 0x0001]  // 65539: not a multiple of 16
        var bytes = [UInt8](repeating: 0, count: 2 * patterns.count + 2)
        bytes.withUnsafeMutableBytes { raw in
            for (i, p) in patterns.enumerated() { raw.storeBytes(of: p.littleEndian, toByteOffset: 2 + 2 * i, as: UInt16.self) }
        }
        var out = [Float](repeating: 0, count: patterns.count)
        bytes.withUnsafeBytes { raw in convertToFloat32(raw.baseAddress! + 2, dtype: dtype, count: patterns.count, into: &out) }
        for (p, actual) in zip(patterns, out) {
            let expected = dtype == .f16 ? float16BitsToFloat(p) : bfloat16BitsToFloat(p)
            if expected.isNaN { #expect(actual.isNaN) } else { #expect(actual.bitPattern == expected.bitPattern, "bits \(p)") }
        }
    }

    @Test func bfloat16RoundsToNearestEven() {
        #expect(floatToBFloat16Bits(1.0) == 0x3f80)
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to even (1.0).
        #expect(floatToBFloat16Bits(1 + 0x1p-8) == 0x3f80)
        #expect(floatToBFloat16Bits(1 + 0x1p-8 + 0x1p-20) == 0x3f81)
        #expect(bfloat16BitsToFloat(floatToBFloat16Bits(.nan)).isNaN)
    }

    @Test func truncatedHeaderIsRefused() throws {
        let path = temporaryPath("short.safetensors")
        FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3]))
        #expect(throws: SafeTensorsError.truncatedHeader(path: path, fileSize: 3)) { try SafeTensorsFile(path: path) }
    }

    @Test func headerLongerThanFileIsRefused() throws {
        var bytes = Data()
        withUnsafeBytes(of: UInt64(1000).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(Data("{}".utf8))
        let path = temporaryPath("cut.safetensors")
        FileManager.default.createFile(atPath: path, contents: bytes)
        #expect(throws: SafeTensorsError.headerTooLarge(path: path, headerSize: 1000, fileSize: 10)) { try SafeTensorsFile(path: path) }
    }

    @Test func tensorOutsideTheFileIsRefused() throws {
        let path = rawFile(header: #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [0, 0, 0, 0])
        #expect(throws: SafeTensorsError.tensorOutOfBounds(path: path, tensor: "w", begin: 0, end: 16, dataSize: 4)) {
            try SafeTensorsFile(path: path)
        }
    }

    @Test func unknownDTypeIsNamed() throws {
        let path = rawFile(header: #"{"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#, data: [0])
        #expect(throws: SafeTensorsError.unknownDType(path: path, tensor: "w", dtype: "F4")) { try SafeTensorsFile(path: path) }
    }

    @Test func shapeThatDisagreesWithOffsetsIsRefused() throws {
        let path = rawFile(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8))
        #expect(throws: SafeTensorsError.sizeMismatch(path: path, tensor: "w", shape: [3], dtype: .f32, byteCount: 8)) {
            try SafeTensorsFile(path: path)
        }
    }

    @Test func invalidJSONIsRefused() throws {
        let path = rawFile(header: "{not json")
        #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(path: path) }
    }

    @Test func shardedDirectoryFindsTensorsAndChecksShapes() throws {
        let dir = (temporaryPath("x") as NSString).deletingLastPathComponent
        var a = SafeTensorsWriter(); try a.add("x", shape: [2], floats: [1, 2])
        var b = SafeTensorsWriter(); try b.add("y", shape: [1, 3], floats: [3, 4, 5], as: .f16)
        try a.write(to: dir + "/model-00001-of-00002.safetensors")
        try b.write(to: dir + "/model-00002-of-00002.safetensors")
        let index = #"{"metadata":{},"weight_map":{"x":"model-00001-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}}"#
        try index.write(toFile: dir + "/model.safetensors.index.json", atomically: true, encoding: .utf8)
        let weights = try TensorDirectory(directory: dir)
        #expect(weights.names == ["x", "y"])
        #expect(try weights.tensor("y", shape: [1, 3]).floats() == [3, 4, 5])
        #expect(throws: SafeTensorsError.self) { try weights.tensor("y", shape: [3]) }
        #expect(throws: SafeTensorsError.missingTensor(name: "z", source: dir)) { try weights.tensor("z") }
    }
}
