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

/// For output positions `outputs`, the first input index, how many inputs each reads, and their
/// weights in fixed point, exactly as Pillow's `precompute_coeffs` then `normalize_coeffs_8bpc`
/// compute them (antialiasing: the filter widens by the scale when shrinking).
struct ResampleCoefficients {
    let kernelSize: Int
    /// [outputs.count] first input index
    let start: [Int]
    /// [outputs.count] inputs read (`xmax` in Pillow, at most kernelSize)
    let count: [Int]
    /// [outputs.count][kernelSize], zero past `count`
    let weights: [Int32]

    /// Pillow takes the box as floats: (double)(in1 - in0) with in0 = 0, in1 = inSize.
    static func scale(inSize: Int, outSize: Int) -> Double { Double(Float(inSize)) / Double(outSize) }

    /// Taps per output, known before anything is allocated.
    static func kernelSize(inSize: Int, outSize: Int, filter: ResampleFilter) -> Int {
        Int((filter.support * max(scale(inSize: inSize, outSize: outSize), 1)).rounded(.up)) * 2 + 1
    }

    init(inSize: Int, outSize: Int, outputs: Range<Int>, filter: ResampleFilter) {
        let scale = Self.scale(inSize: inSize, outSize: outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        let kernelSize = Self.kernelSize(inSize: inSize, outSize: outSize, filter: filter)
        var start = [Int](repeating: 0, count: outputs.count)
        var count = [Int](repeating: 0, count: outputs.count)
        var weights = [Int32](repeating: 0, count: outputs.count * kernelSize)
        var k = [Double](repeating: 0, count: kernelSize)
        for (i, xx) in outputs.enumerated() {
            let center = (Double(xx) + 0.5) * scale
            let ss = 1 / filterScale
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = max(min(Int(center + support + 0.5), inSize) - xmin, 0)
            var ww = 0.0
            for x in 0..<xmax {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<xmax {
                if ww != 0 { k[x] /= ww }
                let scaled = k[x] * Double(1 << precisionBits)
                weights[i * kernelSize + x] = Int32(k[x] < 0 ? -0.5 + scaled : 0.5 + scaled)
            }
            start[i] = xmin
            count[i] = xmax
        }
        self.kernelSize = kernelSize
        self.start = start
        self.count = count
        self.weights = weights
    }
}

/// a * b * ..., or Int.max when that overflows: sizes from a hostile header stay comparable.
func saturatingProduct(_ factors: Int...) -> Int {
    factors.reduce(1) { p, f in
        let (r, overflow) = p.multipliedReportingOverflow(by: f)
        return overflow ? Int.max : r
    }
}

func saturatingSum(_ a: Int, _ b: Int) -> Int {
    let (r, overflow) = a.addingReportingOverflow(b)
    return overflow ? Int.max : r
}

@inline(__always)
private func clip8(_ value: Int32) -> UInt8 {
    UInt8(truncatingIfNeeded: min(max(value >> precisionBits, 0), 255))
}

private let half: Int32 = 1 << (precisionBits - 1)

// MARK: - The canvas

/// An image on a canvas filled with one colour: LLaVA's `expand2square` without allocating the
/// square (a plain image is the canvas of its own size).
struct Canvas {
    let image: RGBImage
    let width: Int
    let height: Int
    /// Where the image's top-left pixel sits.
    let x: Int
    let y: Int
    let background: (UInt8, UInt8, UInt8)

    init(_ image: RGBImage) {
        self.init(image, width: image.width, height: image.height, x: 0, y: 0, background: (0, 0, 0))
    }

    init(_ image: RGBImage, width: Int, height: Int, x: Int, y: Int, background: (UInt8, UInt8, UInt8)) {
        self.image = image
        self.width = width
        self.height = height
        self.x = x
        self.y = y
        self.background = background
    }

    /// A canvas row of background only: [width][3]
    func backgroundRow() -> [UInt8] {
        RGBImage(width: width, height: 1, fill: background).pixels
    }
}

// MARK: - Resampling a window of the output

/// Multiply-adds Pillow's two passes would do for this window; refused above the budget
/// (an image a thousand times longer than wide, padded to a square, would take minutes).
struct ResampleWork {
    var horizontal = 0
    var vertical = 0
    /// Pixels of the intermediate (horizontally resampled) rows kept for the vertical pass.
    var intermediatePixels = 0
    /// Fixed-point weights of both passes' coefficient tables.
    var coefficients = 0
}

extension Canvas {
    /// Pillow 13's pass order (`ImagingResampleInner`): vertical first when the height shrinks
    /// by more rows than twice the columns the width shrinks by, else horizontal first.
    static func verticalFirst(width inW: Int, height inH: Int, outWidth outW: Int, outHeight outH: Int) -> Bool {
        let rowsLost = inH - outH
        return rowsLost > 0 && rowsLost > saturatingProduct(inW - outW, 2)
    }

    /// The input indices output positions `window` read (Pillow's bounds, before the
    /// coefficients exist: centre +- support, clamped to the input).
    static func inputSpan(of window: Range<Int>, inSize: Int, outSize: Int, filter: ResampleFilter) -> Range<Int> {
        guard outSize != inSize, !window.isEmpty else { return window }
        let scale = ResampleCoefficients.scale(inSize: inSize, outSize: outSize)
        let support = filter.support * max(scale, 1)
        let first = max(Int((Double(window.lowerBound) + 0.5) * scale - support + 0.5), 0)
        let end = min(Int((Double(window.upperBound - 1) + 0.5) * scale + support + 0.5), inSize)
        return first..<max(first, end)
    }

    /// The work `resampled` would do, estimated before anything is allocated.
    func work(width outW: Int, height outH: Int, rows: Range<Int>, columns: Range<Int>, filter: ResampleFilter) -> ResampleWork {
        let vertical = outH == height ? 1 : ResampleCoefficients.kernelSize(inSize: height, outSize: outH, filter: filter)
        let horizontal = outW == width ? 1 : ResampleCoefficients.kernelSize(inSize: width, outSize: outW, filter: filter)
        let coefficients = saturatingSum(saturatingProduct(columns.count, horizontal), saturatingProduct(rows.count, vertical))
        if outH != height, outW != width, Self.verticalFirst(width: width, height: height, outWidth: outW, outHeight: outH) {
            // Vertical over every column the window's taps read, then horizontal.
            let span = Self.inputSpan(of: columns, inSize: width, outSize: outW, filter: filter).count
            return ResampleWork(horizontal: saturatingProduct(rows.count, columns.count, horizontal),
                                vertical: saturatingProduct(rows.count, span, vertical),
                                intermediatePixels: saturatingProduct(rows.count, span), coefficients: coefficients)
        }
        // The rows an output row reads lie within its centre +- support (as in the coefficients).
        let needed = Self.inputSpan(of: rows, inSize: height, outSize: outH, filter: filter)
        let imageRows = needed.clamped(to: y..<(y + image.height)).count
        // Columns whose taps reach the image (see touchedColumns), plus the background row.
        let scaleX = ResampleCoefficients.scale(inSize: width, outSize: outW)
        let reach = outW == width ? Double(image.width) : (Double(image.width) + 2 * filter.support * max(scaleX, 1) + 2) / scaleX + 2
        let touched = min(columns.count, Int(min(reach, Double(Int.max / 2))))
        return ResampleWork(horizontal: saturatingSum(saturatingProduct(imageRows, touched, horizontal), saturatingProduct(columns.count, horizontal)),
                            vertical: saturatingProduct(rows.count, columns.count, vertical),
                            intermediatePixels: saturatingProduct(imageRows + 1, columns.count), coefficients: coefficients)
    }

    /// The window columns (0-based) whose input span meets the image's columns `x ..< x + w`:
    /// one contiguous run, since each column's taps are contiguous and move right with it.
    func touchedColumns(_ horizontal: ResampleCoefficients?, columns: Range<Int>) -> Range<Int> {
        let image = x..<(x + self.image.width)
        let meets: (Int) -> Bool = { i in
            guard let h = horizontal else { return image.contains(columns.lowerBound + i) }
            return h.count[i] > 0 && h.start[i] < image.upperBound && h.start[i] + h.count[i] > image.lowerBound
        }
        guard let first = (0..<columns.count).first(where: meets) else { return 0..<0 }
        let last = (first..<columns.count).last(where: meets) ?? first
        return first..<(last + 1)
    }

    /// Pillow's `resize((outW, outH), filter)` of the canvas, evaluated only at output rows
    /// `rows` and columns `columns` (each output pixel depends on its own coefficients only, so a
    /// window equals the same window of the whole result). Each pass is rounded and clipped to
    /// 8 bits; a pass whose size does not change is a copy. Horizontal pass first, unless Pillow
    /// would go vertical first (`verticalFirst`). Canvas rows of pure background are resampled once.
    func resampled(width outW: Int, height outH: Int, rows: Range<Int>, columns: Range<Int>, filter: ResampleFilter) -> RGBImage {
        let vertical = outH == height ? nil : ResampleCoefficients(inSize: height, outSize: outH, outputs: rows, filter: filter)
        let horizontal = outW == width ? nil : ResampleCoefficients(inSize: width, outSize: outW, outputs: columns, filter: filter)
        if let vertical, let horizontal, Self.verticalFirst(width: width, height: height, outWidth: outW, outHeight: outH) {
            return resampledVerticalFirst(vertical, horizontal, rows: rows.count, columns: columns.count)
        }
        let cols = columns.count, rowBytes = columns.count * 3
        // The canvas rows the window reads (Pillow's ybox_first ..< ybox_last for it).
        let needed: Range<Int>
        if let v = vertical, let first = v.start.first, let last = v.start.last, let count = v.count.last {
            needed = first..<max(first, last + count)
        } else {
            needed = rows
        }

        // Intermediate rows: [row][cols][3], one per image row plus one shared by background rows.
        let imageRows = needed.clamped(to: y..<(y + image.height))
        var intermediate = [UInt8](repeating: 0, count: (imageRows.count + 1) * rowBytes)
        let backgroundSlot = imageRows.count
        var slot = [Int](repeating: backgroundSlot, count: needed.count)  // canvas row -> intermediate row
        let covers = x == 0 && image.width == width
        var scratch = covers ? [] : backgroundRow()  // [width][3]: background, the current image row pasted in

        /// Window columns `span` of one canvas row ([width][3] at `row`), resampled into the
        /// intermediate row at `o`. (Every buffer here holds at least one pixel, so base
        /// addresses are never nil.)
        func resampleRow(_ row: UnsafePointer<UInt8>, into o: UnsafeMutablePointer<UInt8>, span: Range<Int>) {
            guard let h = horizontal else {
                (o + span.lowerBound * 3).update(from: row + (columns.lowerBound + span.lowerBound) * 3, count: span.count * 3)
                return
            }
            h.weights.withUnsafeBufferPointer { weights in
                h.start.withUnsafeBufferPointer { starts in
                    h.count.withUnsafeBufferPointer { counts in
                        for i in span {
                            let k = weights.baseAddress! + i * h.kernelSize
                            var p = row + starts[i] * 3
                            var s0 = half, s1 = half, s2 = half
                            for t in 0..<counts[i] {
                                let w = k[t]
                                s0 &+= Int32(p[0]) &* w
                                s1 &+= Int32(p[1]) &* w
                                s2 &+= Int32(p[2]) &* w
                                p += 3
                            }
                            o[i * 3] = clip8(s0)
                            o[i * 3 + 1] = clip8(s1)
                            o[i * 3 + 2] = clip8(s2)
                        }
                    }
                }
            }
        }
        // Window columns whose taps reach the image; the others of an image row equal the
        // background row's (a narrow image padded to a wide square is mostly background).
        let touched = covers ? 0..<cols : touchedColumns(horizontal, columns: columns)
        intermediate.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            let backgroundOut = base + backgroundSlot * rowBytes
            if !covers || imageRows.count < needed.count {
                backgroundRow().withUnsafeBufferPointer { resampleRow($0.baseAddress!, into: backgroundOut, span: 0..<cols) }
            }
            image.pixels.withUnsafeBufferPointer { pixels in
                for (n, r) in imageRows.enumerated() {
                    slot[r - needed.lowerBound] = n
                    let source = pixels.baseAddress! + (r - y) * image.width * 3
                    let target = base + n * rowBytes
                    if covers {
                        resampleRow(source, into: target, span: touched)
                    } else {
                        target.update(from: backgroundOut, count: rowBytes)
                        scratch.withUnsafeMutableBufferPointer { s in
                            (s.baseAddress! + x * 3).update(from: source, count: image.width * 3)
                            resampleRow(s.baseAddress!, into: target, span: touched)
                        }
                    }
                }
            }
        }

        // Vertical pass over the intermediate rows, whole rows at a time (the same integer sums
        // as Pillow's per-pixel loop, in an order that vectorises).
        var out = [UInt8](repeating: 0, count: rows.count * rowBytes)  // [rows][cols][3]
        intermediate.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let v = vertical else {
                    for (i, r) in rows.enumerated() {
                        (dst.baseAddress! + i * rowBytes).update(from: src.baseAddress! + slot[r - needed.lowerBound] * rowBytes, count: rowBytes)
                    }
                    return
                }
                var sums = [Int32](repeating: 0, count: rowBytes)  // [cols*3]
                sums.withUnsafeMutableBufferPointer { acc in
                    for i in 0..<rows.count {
                        for j in 0..<rowBytes { acc[j] = half }
                        for t in 0..<v.count[i] {
                            let w = v.weights[i * v.kernelSize + t]
                            let row = src.baseAddress! + slot[v.start[i] + t - needed.lowerBound] * rowBytes
                            for j in 0..<rowBytes { acc[j] &+= Int32(row[j]) &* w }
                        }
                        let o = dst.baseAddress! + i * rowBytes
                        for j in 0..<rowBytes { o[j] = clip8(acc[j]) }
                    }
                }
            }
        }
        return RGBImage(width: cols, height: rows.count, pixels: out)
    }
}

// MARK: - Vertical pass first

extension Canvas {
    /// The window (`rows` x `columns` outputs, coefficients `v` and `h` for exactly those) with
    /// Pillow's other order: the vertical pass over every canvas column the window's horizontal
    /// taps read, rounded and clipped to 8 bits, then the horizontal pass.
    func resampledVerticalFirst(_ v: ResampleCoefficients, _ h: ResampleCoefficients, rows: Int, columns: Int) -> RGBImage {
        // Canvas columns lo ..< hi that the window reads.
        var lo = width, hi = 0
        for j in 0..<columns where h.count[j] > 0 {
            lo = min(lo, h.start[j])
            hi = max(hi, h.start[j] + h.count[j])
        }
        if lo >= hi { (lo, hi) = (0, 0) }
        let spanBytes = (hi - lo) * 3
        let inImage = (x..<(x + image.width)).clamped(to: lo..<hi)  // canvas columns of the image
        let bg = [Int32(background.0), Int32(background.1), Int32(background.2)]

        // Vertical pass: [rows][hi - lo][3].
        var intermediate = [UInt8](repeating: 0, count: max(1, rows * spanBytes))
        var sums = [Int32](repeating: 0, count: max(1, spanBytes))  // [hi - lo][3]
        image.pixels.withUnsafeBufferPointer { pixels in
            sums.withUnsafeMutableBufferPointer { acc in
                intermediate.withUnsafeMutableBufferPointer { out in
                    /// Adds `w` x background over canvas columns `span` (relative to lo).
                    func addBackground(_ span: Range<Int>, _ w: Int32) {
                        for j in span { for c in 0..<3 { acc[j * 3 + c] &+= bg[c] &* w } }
                    }
                    for i in 0..<rows {
                        for j in 0..<spanBytes { acc[j] = half }
                        for t in 0..<v.count[i] {
                            let w = v.weights[i * v.kernelSize + t], r = v.start[i] + t
                            guard (y..<(y + image.height)).contains(r), !inImage.isEmpty else {
                                addBackground(0..<(hi - lo), w)
                                continue
                            }
                            addBackground(0..<(inImage.lowerBound - lo), w)
                            addBackground((inImage.upperBound - lo)..<(hi - lo), w)
                            let row = pixels.baseAddress! + ((r - y) * image.width + inImage.lowerBound - x) * 3
                            let into = (inImage.lowerBound - lo) * 3
                            for j in 0..<(inImage.count * 3) { acc[into + j] &+= Int32(row[j]) &* w }
                        }
                        for j in 0..<spanBytes { out[i * spanBytes + j] = clip8(acc[j]) }
                    }
                }
            }
        }

        // Horizontal pass: [rows][columns][3].
        var out = [UInt8](repeating: 0, count: rows * columns * 3)
        intermediate.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<rows {
                    for j in 0..<columns {
                        var s0 = half, s1 = half, s2 = half
                        var p = src.baseAddress! + i * spanBytes + (h.start[j] - lo) * 3
                        for t in 0..<h.count[j] {
                            let w = h.weights[j * h.kernelSize + t]
                            s0 &+= Int32(p[0]) &* w
                            s1 &+= Int32(p[1]) &* w
                            s2 &+= Int32(p[2]) &* w
                            p += 3
                        }
                        let o = (i * columns + j) * 3
                        dst[o] = clip8(s0)
                        dst[o + 1] = clip8(s1)
                        dst[o + 2] = clip8(s2)
                    }
                }
            }
        }
        return RGBImage(width: columns, height: rows, pixels: out)
    }
}
