import Foundation
import SafeTensors
import VoCoCompute

// MARK: - How half-precision weights are held

/// Whether F16/BF16 weights stay mapped (the default: the kernels backend reads them in place,
/// as fast as F32 and at half the bytes) or are widened to F32 once at load. F32 weights are
/// always used in place from the memory map.
public enum WeightPolicy: Sendable, Equatable {
    /// Keep half weights mapped; the kernels widen them in registers or packed panels (the
    /// OpenBLAS backend widens tiles of rows into a reused scratch buffer before each GEMM).
    case mapped
    /// Widen every half weight into F32 memory once (2x the checkpoint's size in RAM). Kept for
    /// comparisons and the OpenBLAS backend; the kernels backend gains nothing from it.
    case widenAtLoad
    /// `widenAtLoad` when the widened half weights take at most this many bytes, else `mapped`.
    case automatic(widenUpTo: Int)

    /// Every model stays mapped: resident memory is the weight files' pages, shared with the page cache.
    public static let `default` = WeightPolicy.mapped

    /// Whether a checkpoint with `halfBytes` bytes of F16/BF16 tensors is widened at load.
    func widens(halfBytes: Int) -> Bool {
        switch self {
        case .mapped: return false
        case .widenAtLoad: return true
        case let .automatic(limit): return halfBytes * 2 <= limit
        }
    }
}

// MARK: - Reading tensors, collecting every problem

/// Takes tensors from a checkpoint by name and expected shape. A missing or mis-shaped tensor
/// is recorded, not thrown, so that one load reports all of them (`throwIfProblems`) before
/// any compute; the placeholder returned for it is never used.
final class WeightLoader {
    let directory: TensorDirectory
    let prefix: String
    let widen: Bool
    /// The backend whose one-time preparation every matrix goes through.
    let multiplier: MatrixMultiplier?
    private let problems: ProblemList

    final class ProblemList { var items: [WeightProblem] = [] }

    init(directory: TensorDirectory, prefix: String = "", widen: Bool, multiplier: MatrixMultiplier? = nil) {
        self.directory = directory
        self.prefix = prefix
        self.widen = widen
        self.multiplier = multiplier
        problems = ProblemList()
    }

    private init(parent: WeightLoader, prefix: String) {
        directory = parent.directory
        self.prefix = parent.prefix + prefix
        widen = parent.widen
        multiplier = parent.multiplier
        problems = parent.problems
    }

    /// A loader for names under `prefix` (appended to this one's), sharing the problem list.
    func scoped(_ prefix: String) -> WeightLoader { WeightLoader(parent: self, prefix: prefix) }

    /// Bytes of F16/BF16 tensors in the whole checkpoint.
    static func halfBytes(_ directory: TensorDirectory) -> Int {
        directory.files.reduce(0) { total, file in
            total + file.tensors.filter { $0.dtype == .f16 || $0.dtype == .bf16 }.reduce(0) { $0 + $1.bytes.count }
        }
    }

    private func view(_ name: String, shape: [Int]) -> TensorView? {
        let full = prefix + name
        guard let view = directory[full] else {
            problems.items.append(.missing(tensor: full))
            return nil
        }
        guard view.shape == shape else {
            problems.items.append(.wrongShape(tensor: full, expected: shape, actual: view.shape))
            return nil
        }
        guard [.f32, .f16, .bf16].contains(view.dtype) else {
            problems.items.append(.unsupportedDType(tensor: full, dtype: view.dtype))
            return nil
        }
        return view
    }

    /// A `[rows][columns]` matrix stored with `shape` (default `[rows, columns]`).
    func matrix(_ name: String, rows: Int, columns: Int, shape: [Int]? = nil) -> WeightMatrix {
        guard let view = view(name, shape: shape ?? [rows, columns]),
              let matrix = try? WeightMatrix(view, rows: rows, columns: columns)
        else { return WeightMatrix(name: prefix + name, rows: 0, columns: 0, values: []) }
        let held = widen ? matrix.widened() : matrix
        return multiplier?.prepare(held) ?? held
    }

    /// A small tensor (norm weight, bias, embedding table) read into F32 memory.
    func vector(_ name: String, shape: [Int]) -> [Float] {
        view(name, shape: shape)?.floats() ?? []
    }

    func vector(_ name: String, count: Int) -> [Float] { vector(name, shape: [count]) }

    /// Throws `ModelError.weights` listing every problem recorded so far.
    func throwIfProblems() throws {
        guard problems.items.isEmpty else {
            throw ModelError.weights(directory: directory.directory, problems: problems.items)
        }
    }
}
