// MARK: - Element types of a safetensors file

/// The element types the safetensors format names. We compute in Float32; the others are read
/// (and widened on the fly) or written as they are.
public enum DType: String, Sendable, CaseIterable, Codable {
    case bool = "BOOL"
    case u8 = "U8", i8 = "I8"
    case u16 = "U16", i16 = "I16", f16 = "F16", bf16 = "BF16"
    case u32 = "U32", i32 = "I32", f32 = "F32"
    case u64 = "U64", i64 = "I64", f64 = "F64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8: return 1
        case .u16, .i16, .f16, .bf16: return 2
        case .u32, .i32, .f32: return 4
        case .u64, .i64, .f64: return 8
        }
    }

    /// The floating-point types a model's weights may be stored in.
    public var isFloatingPoint: Bool { self == .f16 || self == .bf16 || self == .f32 || self == .f64 }
}

// MARK: - Half-precision conversion (exact, branch-light so loops vectorise)

@inline(__always)
public func float16BitsToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let magnitude = UInt32(h & 0x7fff)
    let exponent = magnitude >> 10
    // Normal halves: move exponent and mantissa into place and rebias the exponent (127 - 15),
    // integer arithmetic only. Subnormal halves: mantissa * 2^-24, exact in F32 and never a
    // subnormal float (multiplying subnormal floats costs x86 a microcode assist, which made a
    // loop over real weights 5x slower). Infinities and NaNs keep an all-ones exponent.
    // Both selects vectorise, so bulk conversion runs near memcpy speed.
    let normal = (magnitude << 13) &+ 0x3800_0000
    let subnormal = (Float(magnitude) * 0x1p-24).bitPattern
    let special = (magnitude << 13) | 0x7f80_0000
    let bits = exponent == 0 ? subnormal : (exponent == 31 ? special : normal)
    return Float(bitPattern: bits | sign)
}

@inline(__always)
public func bfloat16BitsToFloat(_ h: UInt16) -> Float {
    Float(bitPattern: UInt32(h) << 16)
}

/// Round to nearest even, as torch does; NaN stays NaN.
@inline(__always)
public func floatToBFloat16Bits(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    if f.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
    let rounding = 0x7fff + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}

/// Round to nearest even (IEEE), as torch does.
@inline(__always)
public func floatToFloat16Bits(_ f: Float) -> UInt16 {
    Float16(f).bitPattern
}

// MARK: - Bulk conversion

/// Widens `count` elements of `dtype` at `source` into Float32 at `destination`.
/// Only floating-point and integer types; `bool` reads as 0/1.
public func convertToFloat32(
    _ source: UnsafeRawPointer, dtype: DType, count: Int, into destination: UnsafeMutablePointer<Float>
) {
    switch dtype {
    case .f32:
        destination.update(from: source.assumingMemoryBound(to: Float.self), count: count)
    case .f16:
        let s = source.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { destination[i] = float16BitsToFloat(s[i]) }
    case .bf16:
        let s = source.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { destination[i] = bfloat16BitsToFloat(s[i]) }
    case .f64:
        let s = source.assumingMemoryBound(to: Double.self)
        for i in 0..<count { destination[i] = Float(s[i]) }
    case .bool, .u8:
        let s = source.assumingMemoryBound(to: UInt8.self)
        for i in 0..<count { destination[i] = Float(s[i]) }
    case .i8:
        let s = source.assumingMemoryBound(to: Int8.self)
        for i in 0..<count { destination[i] = Float(s[i]) }
    case .u16:
        let s = source.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { destination[i] = Float(s[i]) }
    case .i16:
        let s = source.assumingMemoryBound(to: Int16.self)
        for i in 0..<count { destination[i] = Float(s[i]) }
    case .u32:
        let s = source.assumingMemoryBound(to: UInt32.self)
        for i in 0..<count { destination[i] = Float(s[i]) }
    case .i32:
        let s = source.assumingMemoryBound(to: Int32.self)
        for i in 0..<count { destination[i] = Float(s[i]) }
    case .u64:
        let s = source.assumingMemoryBound(to: UInt64.self)
        for i in 0..<count { destination[i] = Float(s[i]) }
    case .i64:
        let s = source.assumingMemoryBound(to: Int64.self)
        for i in 0..<count { destination[i] = Float(s[i]) }
    }
}

/// Narrows Float32 values into `dtype` bytes (f32, f16, bf16 only).
public func convertFromFloat32(
    _ source: UnsafePointer<Float>, count: Int, to dtype: DType, into destination: UnsafeMutableRawPointer
) throws {
    switch dtype {
    case .f32:
        destination.assumingMemoryBound(to: Float.self).update(from: source, count: count)
    case .f16:
        let d = destination.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { d[i] = floatToFloat16Bits(source[i]) }
    case .bf16:
        let d = destination.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { d[i] = floatToBFloat16Bits(source[i]) }
    default:
        throw SafeTensorsError.unsupported("conversion from F32 to \(dtype.rawValue)")
    }
}
