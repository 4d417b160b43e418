import COpenBLAS
import Foundation
import SafeTensors
import Testing
import VoCoKernels

// MARK: - ISA levels under test

/// Every level the kernels are written for; a level this CPU lacks is cancelled (reported as
/// skipped) by `requireSupported`, so a run says which levels it covered.
enum Levels {
    static let all: [Int32] = [Int32(VK_ISA_SCALAR.rawValue), Int32(VK_ISA_AVX2.rawValue), Int32(VK_ISA_AVX512.rawValue)]

    static func name(_ isa: Int32) -> String { String(cString: vk_isa_name(isa)) }

    static func requireSupported(_ isa: Int32) throws {
        if vk_isa_supported(isa) == 0 { try Test.cancel("skipped: this CPU cannot run \(name(isa)) kernels") }
    }
}

let f32Code = Int32(VK_F32.rawValue), f16Code = Int32(VK_F16.rawValue), bf16Code = Int32(VK_BF16.rawValue)

// MARK: - Data

/// Deterministic values in [-1, 1): a window, chosen by `seed`, of one noise table made once
/// (debug builds make fresh random arrays slowly).
func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
    precondition(count <= Noise.table.count / 2, "test data of \(count) values: enlarge Noise.table")
    let start = Int(seed &* 7919 % UInt64(Noise.table.count / 2))
    return Array(Noise.table[start..<(start + count)])
}

enum Noise {
    static let table: [Float] = {
        var x: UInt64 = 0x9e37_79b9_7f4a_7c15
        return [Float](unsafeUninitializedCapacity: 1 << 22) { buffer, initialized in
            for i in 0..<buffer.count {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17
                buffer[i] = Float(x >> 40) * 0x1p-23 - 1
            }
            initialized = buffer.count
        }
    }()
}

/// A weight stored as `code` (F32, F16 or BF16): its bits (2 or 4 bytes per element) and the
/// exact F32 values they hold (what OpenBLAS multiplies as the reference).
struct StoredWeight {
    let code: Int32
    var bits: [UInt16] = []  // half types
    var floats: [Float]  // the exact values

    init(_ values: [Float], code: Int32) {
        guard code != f32Code else {
            self.init(floats: values)
            return
        }
        var bits = [UInt16](repeating: 0, count: values.count)
        for i in values.indices { bits[i] = code == f16Code ? floatToFloat16Bits(values[i]) : floatToBFloat16Bits(values[i]) }
        self.init(halfBits: bits, code: code)
    }

    init(floats: [Float]) {
        code = f32Code
        self.floats = floats
    }

    init(halfBits: [UInt16], code: Int32) {
        self.code = code
        bits = halfBits
        var floats = [Float](repeating: 0, count: halfBits.count)
        halfBits.withUnsafeBytes { convertToFloat32($0.baseAddress!, dtype: code == f16Code ? .f16 : .bf16, count: halfBits.count, into: &floats) }
        self.floats = floats
    }

    /// Calls `body` with the weight's storage, one element past an aligned address.
    func withUnalignedStorage<R>(_ body: (UnsafeRawPointer) -> R) -> R {
        if code == f32Code {
            var copy = [Float](repeating: 0, count: floats.count + 1)
            copy.replaceSubrange(1..., with: floats)
            return copy.withUnsafeBytes { body($0.baseAddress! + 4) }
        }
        var copy = [UInt16](repeating: 0, count: bits.count + 1)
        copy.replaceSubrange(1..., with: bits)
        return copy.withUnsafeBytes { body($0.baseAddress! + 2) }
    }
}

// MARK: - The reference

/// `c[m][n] = a[m][k] · bᵀ` (b `[n][k]`) by OpenBLAS, zeroed first.
func referenceProduct(_ a: [Float], m: Int, _ b: [Float], n: Int, k: Int) -> [Float] {
    var c = [Float](repeating: 0, count: m * n)
    if k > 0 {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, &c, Int32(n))
    }
    return c
}

/// Whether `actual` equals `expected` within `relative` of the magnitude of each sum
/// (`magnitude[i]` = Σ|a||b|), NaN where NaN and infinities exactly.
func agrees(_ actual: [Float], _ expected: [Float], magnitude: [Float], relative: Float = 5e-5) -> (ok: Bool, worst: String) {
    guard actual.count == expected.count else { return (false, "count \(actual.count) != \(expected.count)") }
    for i in actual.indices {
        let a = actual[i], e = expected[i]
        if e.isNaN || a.isNaN {
            if !(e.isNaN && a.isNaN) { return (false, "[\(i)]: \(a) vs \(e)") }
        } else if e.isInfinite || a.isInfinite {
            if a != e { return (false, "[\(i)]: \(a) vs \(e)") }
        } else if abs(a - e) > relative * magnitude[i] + 1e-30 {
            return (false, "[\(i)]: \(a) vs \(e) (magnitude \(magnitude[i]))")
        }
    }
    return (true, "")
}
