// MARK: - Where the orientation lives

/// The metadata blocks that can carry an orientation, found by walking the file's structure
/// (JPEG marker segments before the first scan; PNG chunks). The walk stops quietly at anything
/// malformed: the decoder, not this walk, reports broken files.
struct ImageMetadata {
    /// The EXIF block (a TIFF header and IFDs, after one "Exif\0\0" prefix), at most
    /// `maximumExifBytes` of it.
    var exif: [UInt8]? = nil
    /// The XMP packet, at most `maximumXMPBytes` of it.
    var xmp: [UInt8]? = nil

    /// EXIF beyond this many bytes is not examined (one JPEG APP1 segment holds at most 65533;
    /// only IFD0 is read, so a real orientation tag lies well inside).
    static let maximumExifBytes = 1 << 20
    static let maximumXMPBytes = 1 << 20

    static let exifPrefix = Array("Exif\0\0".utf8)
    static let xmpPrefix = Array("http://ns.adobe.com/xap/1.0/\0".utf8)
    static let xmpKeyword = Array("XML:com.adobe.xmp".utf8)

    static func read(_ bytes: UnsafeRawBufferPointer, format: ImageFormat) -> ImageMetadata {
        switch format {
        case .jpeg: return readJPEG(bytes)
        case .png: return readPNG(bytes)
        }
    }

    // MARK: - JPEG: APP1 segments up to the first scan

    /// As Pillow does: every APP1 "Exif" segment is appended (the first keeps its prefix, later
    /// ones drop it), the last XMP APP1 wins.
    static func readJPEG(_ b: UnsafeRawBufferPointer) -> ImageMetadata {
        var meta = ImageMetadata()
        var exif: [UInt8]? = nil  // appended in place: assigning to meta per segment would copy it each time
        var pos = 2  // after SOI
        while pos + 4 <= b.count, b[pos] == 0xff {
            var marker = b[pos + 1]
            pos += 2
            while marker == 0xff, pos < b.count {  // fill bytes
                marker = b[pos]
                pos += 1
            }
            if marker == 0xda || marker == 0xd9 { break }  // SOS, EOI: no more metadata
            if (0xd0...0xd7).contains(marker) || marker == 0x01 { continue }  // no length field
            guard pos + 2 <= b.count else { break }
            let length = Int(b[pos]) << 8 | Int(b[pos + 1])
            guard length >= 2, pos + length <= b.count else { break }
            let payload = UnsafeRawBufferPointer(rebasing: b[(pos + 2)..<(pos + length)])
            if marker == 0xe1 {
                if hasPrefix(payload, exifPrefix) {
                    let body = payload.dropFirst(exifPrefix.count)
                    let room = maximumExifBytes - (exif?.count ?? 0)
                    exif = exif ?? []
                    exif?.append(contentsOf: body.prefix(room))
                } else if hasPrefix(payload, xmpPrefix) {
                    meta.xmp = Array(payload.dropFirst(xmpPrefix.count).prefix(maximumXMPBytes))
                }
            }
            pos += length
        }
        meta.exif = exif
        return meta
    }

    // MARK: - PNG: eXIf, and XMP in iTXt/tEXt

    /// Chunks are walked to IEND, so an eXIf after the image data counts (Pillow reads it when
    /// the image loads). Compressed iTXt and ImageMagick's zTXt "Raw profile" are not inflated.
    static func readPNG(_ b: UnsafeRawBufferPointer) -> ImageMetadata {
        var meta = ImageMetadata()
        var pos = 8  // after the signature
        while pos + 12 <= b.count {
            let length = Int(readUInt32BE(b, pos))
            guard length <= b.count - pos - 12 else { break }
            let type = (b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7])
            let data = UnsafeRawBufferPointer(rebasing: b[(pos + 8)..<(pos + 8 + length)])
            switch type {
            case (0x65, 0x58, 0x49, 0x66):  // eXIf
                meta.exif = Array(data.prefix(maximumExifBytes))
            case (0x69, 0x54, 0x58, 0x74):  // iTXt: keyword 0 flag method language 0 translated 0 text
                if let text = xmpFromITXt(data) { meta.xmp = text }
            case (0x74, 0x45, 0x58, 0x74):  // tEXt: keyword 0 text
                if hasPrefix(data, xmpKeyword + [0]) {
                    meta.xmp = Array(data.dropFirst(xmpKeyword.count + 1).prefix(maximumXMPBytes))
                }
            case (0x49, 0x45, 0x4e, 0x44):  // IEND
                return meta
            default:
                break
            }
            pos += 12 + length
        }
        return meta
    }

    private static func xmpFromITXt(_ data: UnsafeRawBufferPointer) -> [UInt8]? {
        guard hasPrefix(data, xmpKeyword + [0]), data.count >= xmpKeyword.count + 3 else { return nil }
        var pos = xmpKeyword.count + 1
        guard data[pos] == 0 else { return nil }  // compressed: not inflated
        pos += 2
        for _ in 0..<2 {  // language tag, translated keyword
            guard let end = data[pos...].firstIndex(of: 0) else { return nil }
            pos = end + 1
        }
        return Array(data[pos...].prefix(maximumXMPBytes))
    }
}

// MARK: - Byte helpers

func hasPrefix(_ data: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
    data.count >= prefix.count && prefix.indices.allSatisfy { data[$0] == prefix[$0] }
}

func readUInt32BE(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
    UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
}
