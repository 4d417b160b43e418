import SafeTensors

// MARK: - A weight matrix, wherever its bytes live

/// A row-major `[rows][columns]` weight (a linear layer's `[out][in]`), read in place from a
/// memory-mapped checkpoint or from memory the matrix owns. F32 weights are used directly;
/// F16/BF16 weights stay in their 2-byte form and are widened a tile of rows at a time, just
/// before the GEMM that needs them, so a half-precision checkpoint never exists whole in F32.
public struct WeightMatrix: @unchecked Sendable {
    public let name: String
    public let rows: Int
    public let columns: Int
    /// Storage type: `.f32`, `.f16` or `.bf16`.
    public let dtype: DType
    /// `[rows][columns]` elements of `dtype`.
    public let base: UnsafeRawPointer
    /// Keeps the map (a `TensorView`) or the owned storage alive.
    private let keepAlive: Any

    /// A view of `view`'s bytes as `[rows][columns]` (a conv kernel `[o, c, p, p]` is `[o][c*p*p]`).
    public init(_ view: TensorView, rows: Int, columns: Int) throws {
        guard view.count == rows * columns else {
            throw SafeTensorsError.shapeMismatch(tensor: view.name, source: "weight matrix", expected: [rows, columns], actual: view.shape)
        }
        guard [.f32, .f16, .bf16].contains(view.dtype) else {
            throw SafeTensorsError.unsupported("tensor '\(view.name)' has dtype \(view.dtype.rawValue); weights must be F32, F16 or BF16")
        }
        guard let base = view.bytes.baseAddress ?? (view.count == 0 ? UnsafeRawPointer(bitPattern: 64) : nil) else {
            throw SafeTensorsError.unsupported("tensor '\(view.name)' has no bytes")
        }
        self.name = view.name
        self.rows = rows
        self.columns = columns
        dtype = view.dtype
        // F32 data at an address that is not 4-byte aligned is copied once, so BLAS reads it in place.
        if view.dtype == .f32, Int(bitPattern: base) % MemoryLayout<Float>.alignment != 0 {
            let storage = FloatStorage(count: rows * columns)
            view.copyAsFloat32(into: storage.pointer)
            self.base = UnsafeRawPointer(storage.pointer)
            keepAlive = storage
        } else {
            self.base = base
            keepAlive = view
        }
    }

    /// An owned F32 matrix.
    public init(name: String, rows: Int, columns: Int, storage: FloatStorage) {
        precondition(storage.count == rows * columns, "\(name): storage holds \(storage.count) floats, not \(rows)x\(columns)")
        self.name = name
        self.rows = rows
        self.columns = columns
        dtype = .f32
        base = UnsafeRawPointer(storage.pointer)
        keepAlive = storage
    }

    /// An owned F32 matrix holding `values` (row-major).
    public init(name: String, rows: Int, columns: Int, values: [Float]) {
        self.init(name: name, rows: rows, columns: columns, storage: FloatStorage(values))
    }

    // MARK: - Access

    /// The elements as F32 in place, when they are stored as F32.
    public var float32: UnsafePointer<Float>? { dtype == .f32 ? base.assumingMemoryBound(to: Float.self) : nil }

    /// Bytes of storage.
    public var byteCount: Int { rows * columns * dtype.size }

    /// Widens rows `range` into `destination` (`[range.count][columns]` floats).
    @inline(__always)
    public func widenRows(_ range: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        guard !range.isEmpty else { return }
        convertToFloat32(base + range.lowerBound * columns * dtype.size, dtype: dtype,
                         count: range.count * columns, into: destination)
    }

    /// This matrix widened once into owned F32 memory (itself when already F32).
    public func widened() -> WeightMatrix {
        if dtype == .f32 { return self }
        let storage = FloatStorage(count: rows * columns)
        widenRows(0..<rows, into: storage.pointer)
        return WeightMatrix(name: name, rows: rows, columns: columns, storage: storage)
    }
}
