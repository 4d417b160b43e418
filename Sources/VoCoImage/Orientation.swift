// MARK: - Reading the orientation

/// EXIF orientation (1-8) as Pillow's `ImageOps.exif_transpose` finds it: the Orientation tag
/// (0x0112) of IFD0; when absent, `tiff:Orientation` in the XMP packet.
enum Orientation {
    static func value(of meta: ImageMetadata) -> Int {
        if let exif = meta.exif, let value = exifOrientation(exif) { return value }
        if let xmp = meta.xmp, let value = xmpOrientation(xmp) { return value }
        return 1
    }

    /// The tag's value; 0 when the tag is present but not one integer (no transform, as in
    /// Pillow); nil when absent or the block is not TIFF-structured. Only IFD0 is read and every
    /// read is bounds-checked, so the cost is at most 65535 entries whatever the block holds.
    static func exifOrientation(_ exif: [UInt8]) -> Int? {
        exif.withUnsafeBytes { raw -> Int? in
            var b = raw
            while hasPrefix(b, ImageMetadata.exifPrefix) { b = UnsafeRawBufferPointer(rebasing: b.dropFirst(6)) }
            guard b.count >= 8 else { return nil }
            let little: Bool
            switch (b[0], b[1]) {
            case (0x49, 0x49): little = true
            case (0x4d, 0x4d): little = false
            default: return nil
            }
            // 42 in either byte order (Pillow accepts the swapped one that some writers emit).
            guard (b[2] == 0x2a && b[3] == 0) || (b[2] == 0 && b[3] == 0x2a) else { return nil }
            func u16(_ at: Int) -> Int { little ? Int(b[at]) | Int(b[at + 1]) << 8 : Int(b[at]) << 8 | Int(b[at + 1]) }
            func u32(_ at: Int) -> Int { little ? u16(at) | u16(at + 2) << 16 : u16(at) << 16 | u16(at + 2) }
            let ifd = u32(4)
            guard ifd <= b.count - 2 else { return nil }
            var orientation: Int? = nil
            for i in 0..<u16(ifd) {
                let entry = ifd + 2 + 12 * i
                guard entry <= b.count - 12 else { break }  // a short IFD keeps what was read, as Pillow does
                guard u16(entry) == 0x0112 else { continue }
                let type = u16(entry + 2), count = u32(entry + 4), value = entry + 8
                switch (type, count) {
                case (1, 1): orientation = Int(b[value])                 // BYTE
                case (6, 1): orientation = Int(Int8(bitPattern: b[value]))  // SBYTE
                case (3, 1): orientation = u16(value)                    // SHORT
                case (8, 1): orientation = Int(Int16(truncatingIfNeeded: u16(value)))  // SSHORT
                case (4, 1): orientation = u32(value)                    // LONG
                case (9, 1): orientation = Int(Int32(truncatingIfNeeded: u32(value)))  // SLONG
                case (1, _), (3, _), (4, _), (6, _), (8, _), (9, _): orientation = 0
                default: continue  // other types: not an orientation Pillow would act on
                }
            }
            return orientation
        }
    }

    /// Pillow's pattern `tiff:Orientation(="|>)([0-9])`, first match.
    static func xmpOrientation(_ xmp: [UInt8]) -> Int? {
        let key = Array("tiff:Orientation".utf8)
        guard xmp.count > key.count + 2 else { return nil }
        for start in 0...(xmp.count - key.count - 2) where xmp[start] == key[0] {
            guard key.indices.allSatisfy({ xmp[start + $0] == key[$0] }) else { continue }
            var at = start + key.count
            if xmp[at] == UInt8(ascii: "=") {
                guard xmp[at + 1] == UInt8(ascii: "\"") else { continue }
                at += 2
            } else if xmp[at] == UInt8(ascii: ">") {
                at += 1
            } else { continue }
            guard at < xmp.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(xmp[at]) else { continue }
            return Int(xmp[at] - UInt8(ascii: "0"))
        }
        return nil
    }
}

// MARK: - Applying it

extension RGBImage {
    /// The image turned upright for an EXIF orientation, as Pillow's transposes do:
    /// 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270,
    /// 7 TRANSVERSE, 8 ROTATE_90; any other value leaves it as it is.
    public func oriented(_ orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation) else { return self }
        let w = width, h = height
        let swaps = orientation >= 5
        let outW = swaps ? h : w, outH = swaps ? w : h
        // Source pixel (sx, sy) for output pixel (x, y).
        let source: (Int, Int) -> (Int, Int)
        switch orientation {
        case 2: source = { x, y in (w - 1 - x, y) }
        case 3: source = { x, y in (w - 1 - x, h - 1 - y) }
        case 4: source = { x, y in (x, h - 1 - y) }
        case 5: source = { x, y in (y, x) }
        case 6: source = { x, y in (y, h - 1 - x) }
        case 7: source = { x, y in (w - 1 - y, h - 1 - x) }
        default: source = { x, y in (w - 1 - y, x) }
        }
        var out = [UInt8](repeating: 0, count: pixels.count)  // [outH][outW][3]
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<outH {
                    for x in 0..<outW {
                        let (sx, sy) = source(x, y)
                        let s = (sy * w + sx) * 3, d = (y * outW + x) * 3
                        dst[d] = src[s]
                        dst[d + 1] = src[s + 1]
                        dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        return RGBImage(width: outW, height: outH, pixels: out)
    }
}
