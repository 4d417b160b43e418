import Foundation

/// Builds a safetensors file in memory and writes it atomically. The header is JSON with
/// sorted keys, padded with spaces to a multiple of 8 bytes, as the reference library does.
public struct SafeTensorsWriter {
    private struct Entry { let name: String; let dtype: DType; let shape: [Int]; let data: Data }
    private var entries: [Entry] = []
    public var metadata: [String: String] = [:]

    public init(metadata: [String: String] = [:]) { self.metadata = metadata }

    /// Adds raw little-endian bytes for a tensor.
    public mutating func add(_ name: String, dtype: DType, shape: [Int], bytes: Data) throws {
        guard shape.reduce(1, *) * dtype.size == bytes.count else {
            throw SafeTensorsError.unsupported("tensor '\(name)': shape \(shape) of \(dtype.rawValue) needs \(shape.reduce(1, *) * dtype.size) bytes, got \(bytes.count)")
        }
        guard name != "__metadata__", !entries.contains(where: { $0.name == name }) else {
            throw SafeTensorsError.unsupported("tensor name '\(name)' is reserved or used twice")
        }
        entries.append(Entry(name: name, dtype: dtype, shape: shape, data: bytes))
    }

    /// Adds Float32 values, stored as `dtype` (F32, F16 or BF16).
    public mutating func add(_ name: String, shape: [Int], floats: [Float], as dtype: DType = .f32) throws {
        guard shape.reduce(1, *) == floats.count else {
            throw SafeTensorsError.unsupported("tensor '\(name)': shape \(shape) needs \(shape.reduce(1, *)) values, got \(floats.count)")
        }
        var data = Data(count: floats.count * dtype.size)
        try data.withUnsafeMutableBytes { raw in
            try floats.withUnsafeBufferPointer { src in
                guard let s = src.baseAddress, let d = raw.baseAddress else { return }
                try convertFromFloat32(s, count: floats.count, to: dtype, into: d)
            }
        }
        try add(name, dtype: dtype, shape: shape, bytes: data)
    }

    /// Adds Int64 values (token ids and the like).
    public mutating func add(_ name: String, shape: [Int], int64s: [Int64]) throws {
        let data = int64s.withUnsafeBufferPointer { Data(buffer: $0) }
        try add(name, dtype: .i64, shape: shape, bytes: data)
    }

    /// The serialised file.
    public func serialized() throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        let ordered = entries.sorted { $0.name < $1.name }
        for entry in ordered {
            header[entry.name] = [
                "dtype": entry.dtype.rawValue,
                "shape": entry.shape,
                "data_offsets": [offset, offset + entry.data.count],
            ] as [String: Any]
            offset += entry.data.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        let padding = (8 - json.count % 8) % 8
        json.append(contentsOf: [UInt8](repeating: 0x20, count: padding))
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for entry in ordered { out.append(entry.data) }
        return out
    }

    /// Writes the file atomically (a temporary file renamed into place).
    public func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        do {
            try serialized().write(to: url, options: .atomic)
        } catch let error as SafeTensorsError {
            throw error
        } catch {
            throw SafeTensorsError.cannotOpen(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
