#if canImport(Glibc)
import Glibc
#endif

// MARK: - Filters (Pillow's src/libImaging/Resample.c)

/// Pillow's separable resampling filters, numbered as `PIL.Image.Resampling` (and
/// `preprocessor_config.json`'s `resample`). NEAREST (0) and MKS2013/2021 (6, 7) are not here.
public enum ResampleFilter: Int, Sendable {
    case lanczos = 1, bilinear = 2, bicubic = 3, box = 4, hamming = 5

    var support: Double {
        switch self {
        case .box: return 0.5
        case .bilinear, .hamming: return 1
        case .bicubic: return 2
        case .lanczos: return 3
        }
    }

    func weight(_ x: Double) -> Double {
        switch self {
        case .box:
            return x > -0.5 && x <= 0.5 ? 1 : 0
        case .bilinear:
            let x = abs(x)
            return x < 1 ? 1 - x : 0
        case .hamming:
            let x = abs(x)
            if x == 0 { return 1 }
            if x >= 1 { return 0 }
            let px = x * Double.pi
            return sin(px) / px * (Double(Float(0.54)) + Double(Float(0.46)) * cos(px))
        case .bicubic:
            let a = -0.5, x = abs(x)
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        case .lanczos:
            guard -3 <= x && x < 3 else { return 0 }
            return Self.sinc(x) * Self.sinc(x / 3)
        }
    }

    private static func sinc(_ x: Double) -> Double {
        if x == 0 { return 1 }
        let px = x * Double.pi
        return sin(px) / px
    }
}

// MARK: - Coefficients

/// Pillow's fixed point: 8 bits of result, 2 of headroom, 22 of fraction.
private let precisionBits: Int32 = 32 - 8 - 2

/// For each output position, the first input index, how many inputs it reads, and their
/// weights in fixed point, exactly as Pillow's `precompute_coeffs` then
/// `normalize_coeffs_8bpc` compute them (antialiasing: the filter widens by the scale when
/// shrinking).
struct ResampleCoefficients {
    let kernelSize: Int
    /// [outSize] first input index
    let start: [Int]
    /// [outSize] inputs read (`xmax` in Pillow, at most kernelSize)
    let count: [Int]
    /// [outSize][kernelSize], zero past `count`
    let weights: [Int32]

    init(inSize: Int, outSize: Int, filter: ResampleFilter) {
        // Pillow takes the box as floats: (double)(in1 - in0) with in0 = 0, in1 = inSize.
        let scale = Double(Float(inSize)) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        let kernelSize = Int(support.rounded(.up)) * 2 + 1
        var start = [Int](repeating: 0, count: outSize)
        var count = [Int](repeating: 0, count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * kernelSize)
        var k = [Double](repeating: 0, count: kernelSize)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let ss = 1 / filterScale
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var ww = 0.0
            for x in 0..<max(xmax, 0) {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<max(xmax, 0) {
                if ww != 0 { k[x] /= ww }
                let scaled = k[x] * Double(1 << precisionBits)
                weights[xx * kernelSize + x] = Int32(k[x] < 0 ? -0.5 + scaled : 0.5 + scaled)
            }
            start[xx] = xmin
            count[xx] = max(xmax, 0)
        }
        self.kernelSize = kernelSize
        self.start = start
        self.count = count
        self.weights = weights
    }
}

@inline(__always)
private func clip8(_ value: Int32) -> UInt8 {
    UInt8(truncatingIfNeeded: min(max(value >> precisionBits, 0), 255))
}

// MARK: - The two passes

extension RGBImage {
    /// Pillow's `Image.resize((width, height), filter)` on an "RGB" image: a horizontal pass
    /// (over only the rows the vertical pass reads), rounded and clipped to 8 bits, then a
    /// vertical pass; a pass whose size does not change is skipped.
    public func resized(width outW: Int, height outH: Int, filter: ResampleFilter) -> RGBImage {
        precondition(outW > 0 && outH > 0, "resize to \(outW)x\(outH)")
        if outW == width && outH == height { return self }
        let vertical = ResampleCoefficients(inSize: height, outSize: outH, filter: filter)
        var source = self
        var rowOffset = 0
        if outW != width {
            let first = vertical.start[0]
            let last = vertical.start[outH - 1] + vertical.count[outH - 1]
            source = horizontalPass(rows: first..<last, outWidth: outW, ResampleCoefficients(inSize: width, outSize: outW, filter: filter))
            rowOffset = first
        }
        if outH != height {
            source = source.verticalPass(outHeight: outH, vertical, rowOffset: rowOffset)
        }
        return source
    }

    /// [rows.count][outWidth][3] from rows `rows` of self.
    private func horizontalPass(rows: Range<Int>, outWidth: Int, _ c: ResampleCoefficients) -> RGBImage {
        var out = [UInt8](repeating: 0, count: rows.count * outWidth * 3)
        let half: Int32 = 1 << (precisionBits - 1)
        pixels.withUnsafeBufferPointer { src in
            c.weights.withUnsafeBufferPointer { weights in
                out.withUnsafeMutableBufferPointer { dst in
                    for (r, y) in rows.enumerated() {
                        let row = src.baseAddress! + y * width * 3
                        let outRow = dst.baseAddress! + r * outWidth * 3
                        for xx in 0..<outWidth {
                            let k = weights.baseAddress! + xx * c.kernelSize
                            var p = row + c.start[xx] * 3
                            var s0 = half, s1 = half, s2 = half
                            for x in 0..<c.count[xx] {
                                let w = k[x]
                                s0 &+= Int32(p[0]) &* w
                                s1 &+= Int32(p[1]) &* w
                                s2 &+= Int32(p[2]) &* w
                                p += 3
                            }
                            outRow[xx * 3] = clip8(s0)
                            outRow[xx * 3 + 1] = clip8(s1)
                            outRow[xx * 3 + 2] = clip8(s2)
                        }
                    }
                }
            }
        }
        return RGBImage(width: outWidth, height: rows.count, pixels: out)
    }

    /// [outHeight][width][3]; input row i of `c` is row `i - rowOffset` of self. Accumulates
    /// whole rows (the same integer sums as Pillow's per-pixel loop, in an order that vectorises).
    private func verticalPass(outHeight: Int, _ c: ResampleCoefficients, rowOffset: Int) -> RGBImage {
        let rowLength = width * 3
        var out = [UInt8](repeating: 0, count: outHeight * rowLength)
        var acc = [Int32](repeating: 0, count: rowLength)  // [width*3]
        let half: Int32 = 1 << (precisionBits - 1)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                acc.withUnsafeMutableBufferPointer { sums in
                    for yy in 0..<outHeight {
                        for i in 0..<rowLength { sums[i] = half }
                        let first = c.start[yy] - rowOffset
                        for y in 0..<c.count[yy] {
                            let w = c.weights[yy * c.kernelSize + y]
                            let row = src.baseAddress! + (first + y) * rowLength
                            for i in 0..<rowLength { sums[i] &+= Int32(row[i]) &* w }
                        }
                        let outRow = dst.baseAddress! + yy * rowLength
                        for i in 0..<rowLength { outRow[i] = clip8(sums[i]) }
                    }
                }
            }
        }
        return RGBImage(width: width, height: outHeight, pixels: out)
    }
}
