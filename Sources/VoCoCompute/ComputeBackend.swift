import Foundation
import VoCoKernels

// MARK: - Instruction-set levels of the kernels

/// The levels VoCoKernels is written for. `best` is what this CPU runs, capped by `$VOCO_ISA`
/// (`scalar`, `avx2` or `avx512`), so the AVX2 path can be run on an AVX-512 machine.
public enum KernelISA: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case scalar = 0
    /// AVX2 + FMA + F16C.
    case avx2 = 1
    /// AVX-512 F, BW, VL, DQ.
    case avx512 = 2

    /// Whether this CPU runs the level.
    public var isSupported: Bool { vk_isa_supported(rawValue) != 0 }

    /// The best level of this CPU, capped by `$VOCO_ISA`.
    public static var best: KernelISA { KernelISA(rawValue: vk_isa_default()) ?? .scalar }

    /// Every level this CPU runs (whatever `$VOCO_ISA` says).
    public static var supported: [KernelISA] { allCases.filter(\.isSupported) }

    public var description: String { String(cString: vk_isa_name(rawValue)) }

    public init?(name: String) {
        let raw = vk_isa_from_name(name)
        guard raw >= 0, let isa = KernelISA(rawValue: raw) else { return nil }
        self = isa
    }
}

// MARK: - Which implementation runs the products

/// The backend behind `MatrixMultiplier`: VoCoKernels (F16/BF16 weights read in place; the
/// default) or OpenBLAS F32 (the reference the tests compare against).
public enum ComputeBackend: Sendable, Equatable, CustomStringConvertible {
    case openBLAS
    /// VoCoKernels at `isa` (`nil`: `KernelISA.best`). A level the CPU lacks runs the best below it.
    case kernels(KernelISA?)

    /// `$VOCO_BACKEND` when it names a backend, else `.kernels(nil)`.
    public static var `default`: ComputeBackend {
        if let value = ProcessInfo.processInfo.environment["VOCO_BACKEND"], let backend = ComputeBackend(name: value) {
            return backend
        }
        return .kernels(nil)
    }

    /// The names a command line accepts.
    public static let argumentNames = "kernels, kernels-avx512, kernels-avx2, kernels-scalar, openblas"

    /// `openblas`, `kernels`, or `kernels-<isa>` (`kernels-avx2`, ...).
    public init?(name argument: String) {
        let name = argument.lowercased()
        if name == "openblas" || name == "blas" {
            self = .openBLAS
        } else if name == "kernels" {
            self = .kernels(nil)
        } else if name.hasPrefix("kernels-"), let isa = KernelISA(name: String(name.dropFirst("kernels-".count))) {
            self = .kernels(isa)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .openBLAS: return "openblas"
        case let .kernels(isa): return isa.map { "kernels-\($0)" } ?? "kernels"
        }
    }

    /// A multiplier of this backend on `threads`.
    public func makeMultiplier(threads: ComputeThreads) -> MatrixMultiplier {
        switch self {
        case .openBLAS: return BLASMultiplier(threads: threads)
        case let .kernels(isa): return KernelMultiplier(threads: threads, isa: isa)
        }
    }
}
