import Foundation

// MARK: - One tensor, viewed in place

/// A tensor inside a mapped safetensors file: its bytes are not copied.
public struct TensorView: @unchecked Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// The tensor's bytes inside the map (little-endian, row-major).
    public let bytes: UnsafeRawBufferPointer
    /// Keeps the map alive while the view exists.
    let owner: MappedFile

    public var count: Int { shape.reduce(1, *) }

    /// Widens the tensor into `destination`, which must hold `count` floats.
    public func copyAsFloat32(into destination: UnsafeMutablePointer<Float>) {
        guard count > 0, let base = bytes.baseAddress else { return }
        convertToFloat32(base, dtype: dtype, count: count, into: destination)
    }

    /// Widens rows `rows` of a 2-D (or flattened leading-dimension) tensor into `destination`.
    public func copyRowsAsFloat32(_ rows: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        let rowLength = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
        guard !rows.isEmpty, let base = bytes.baseAddress else { return }
        convertToFloat32(base + rows.lowerBound * rowLength * dtype.size, dtype: dtype,
                         count: rows.count * rowLength, into: destination)
    }

    /// The tensor as a new Float32 array.
    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress { copyAsFloat32(into: base) }
            initialized = count
        }
    }
}

// MARK: - A safetensors file

/// Parses and checks a safetensors file: 8-byte little-endian header length, JSON header,
/// then the data section. Every tensor's dtype, shape and byte range is validated at open.
public final class SafeTensorsFile: @unchecked Sendable {
    public let path: String
    public let metadata: [String: String]
    /// Tensors in file order (by data offset).
    public let tensors: [TensorView]
    private let index: [String: Int]

    /// A header longer than this is refused before it is parsed (real checkpoints stay far below).
    public static let maximumHeaderSize: UInt64 = 100_000_000

    public convenience init(path: String) throws {
        try self.init(mapped: MappedFile(path: path))
    }

    public init(mapped file: MappedFile) throws {
        path = file.path
        guard file.size >= 8, let base = file.bytes.baseAddress else {
            throw SafeTensorsError.truncatedHeader(path: file.path, fileSize: file.size)
        }
        let headerSize = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerSize <= UInt64(file.size - 8) else {
            throw SafeTensorsError.headerTooLarge(path: file.path, headerSize: headerSize, fileSize: file.size)
        }
        guard headerSize <= Self.maximumHeaderSize else {
            throw SafeTensorsError.invalidHeader(path: file.path, reason: "header of \(headerSize) bytes exceeds the \(Self.maximumHeaderSize)-byte limit")
        }
        let headerData = Data(bytes: base + 8, count: Int(headerSize))
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: headerData)
        } catch {
            throw SafeTensorsError.invalidHeader(path: file.path, reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard let entries = parsed as? [String: Any] else {
            throw SafeTensorsError.invalidHeader(path: file.path, reason: "the header is not a JSON object")
        }
        let dataStart = 8 + Int(headerSize)
        let dataSize = file.size - dataStart
        var metadata: [String: String] = [:]
        var views: [(offset: Int, view: TensorView)] = []
        for (name, value) in entries {
            if name == "__metadata__" {
                guard let dict = value as? [String: Any] else {
                    throw SafeTensorsError.invalidHeader(path: file.path, reason: "__metadata__ is not an object")
                }
                for (k, v) in dict {
                    guard let s = v as? String else {
                        throw SafeTensorsError.invalidHeader(path: file.path, reason: "__metadata__ value '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any],
                  let dtypeName = entry["dtype"] as? String,
                  let shapeValues = entry["shape"] as? [Any],
                  let offsetValues = entry["data_offsets"] as? [Any], offsetValues.count == 2
            else {
                throw SafeTensorsError.invalidHeader(path: file.path, reason: "tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw SafeTensorsError.unknownDType(path: file.path, tensor: name, dtype: dtypeName)
            }
            let shape = try shapeValues.map { try Self.nonNegativeInt($0, path: file.path, what: "shape of '\(name)'") }
            let begin = try Self.nonNegativeInt(offsetValues[0], path: file.path, what: "data_offsets of '\(name)'")
            let end = try Self.nonNegativeInt(offsetValues[1], path: file.path, what: "data_offsets of '\(name)'")
            guard begin <= end, end <= dataSize else {
                throw SafeTensorsError.tensorOutOfBounds(path: file.path, tensor: name, begin: begin, end: end, dataSize: dataSize)
            }
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            guard !overflow, elements.multipliedReportingOverflow(by: dtype.size) == (end - begin, false) else {
                throw SafeTensorsError.sizeMismatch(path: file.path, tensor: name, shape: shape, dtype: dtype, byteCount: end - begin)
            }
            let bytes = UnsafeRawBufferPointer(start: base + dataStart + begin, count: end - begin)
            views.append((begin, TensorView(name: name, dtype: dtype, shape: shape, bytes: bytes, owner: file)))
        }
        views.sort { $0.offset < $1.offset || ($0.offset == $1.offset && $0.view.name < $1.view.name) }
        self.metadata = metadata
        tensors = views.map(\.view)
        index = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    public subscript(name: String) -> TensorView? { index[name].map { tensors[$0] } }

    /// The tensor named `name`, or an error that names it and this file.
    public func tensor(_ name: String) throws -> TensorView {
        guard let view = self[name] else { throw SafeTensorsError.missingTensor(name: name, source: path) }
        return view
    }

    private static func nonNegativeInt(_ value: Any, path: String, what: String) throws -> Int {
        if let n = value as? NSNumber, n.int64Value >= 0, n.doubleValue == Double(n.int64Value) {
            return Int(n.int64Value)
        }
        throw SafeTensorsError.invalidHeader(path: path, reason: "\(what) is not a non-negative integer")
    }
}
