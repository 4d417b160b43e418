import Crypto

// MARK: - Format 2: the compact header (Schemas/record-format.md, "Format 2")

/// `"VK" || 2 || codec || dtype || flags || varints layers, kvHeads, headDim, tokens,
/// firstPosition || codec parameters [|| reference tag]`, then the payload, then a 16-byte
/// checksum: the first 16 bytes of SHA-256(model || image [|| reference digest] || everything
/// before the checksum). A k = 1 record of the bundled model spends 12 header bytes (16 when it
/// is relative to its model's reference) and 16 checksum bytes where format 1 spends 160; the
/// model and image are the record's key, and the checksum refuses a record read under another
/// key or decoded against another reference.
enum CompactHeader {
    static let magic: [UInt8] = Array("VK".utf8)
    static let formatVersion = 2
    static let checksumLength = 16
    static let checksumName = "sha256-keyed-16"
    static let flagKeysBeforeRoPE: UInt8 = 1
    static let flagZstd: UInt8 = 2
    /// The record holds its values minus its model's reference (ModelReference.swift); `hq` only.
    static let flagRelative: UInt8 = 4
    /// int8 only: a bfloat16 scale per row (`RecordHeader.flagInt8RowScales`, the same bit in format 1).
    static let flagInt8RowScales: UInt8 = RecordHeader.flagInt8RowScales
    static let knownFlags = flagKeysBeforeRoPE | flagZstd | flagRelative | flagInt8RowScales

    static func isCompact(_ record: UnsafeRawBufferPointer) -> Bool {
        record.count >= 2 && record[0] == magic[0] && record[1] == magic[1]
    }

    static func encode(_ h: RecordHeader) -> [UInt8] {
        let flags = (h.keysBeforeRoPE ? flagKeysBeforeRoPE : 0) | (h.payloadIsZstd ? flagZstd : 0)
            | (h.referenceTag != nil ? flagRelative : 0) | (h.int8RowScales ? flagInt8RowScales : 0)
        var out = magic + [UInt8(formatVersion), h.codec.rawValue, h.dtype.rawValue, flags]
        for value in [h.layers, h.kvHeads, h.headDim, h.tokens, h.firstPosition] { appendVarint(value, to: &out) }
        switch h.codec {
        case .hq: out.append(UInt8(h.keyBits | h.valueBits << 4))
        case .q4: appendVarint(h.groupSize, to: &out)
        case .shuffleZstd, .zstd, .int8: break
        }
        if let tag = h.referenceTag { out += tag }
        return out
    }

    /// Parses and checks a compact header; `model` and `image` are the key's. The checksum is
    /// checked by `RecordCoder`.
    static func decode(_ record: UnsafeRawBufferPointer, model: Digest, image: Digest) throws -> RecordHeader {
        let end = record.count - checksumLength  // the header and payload lie before this
        guard end >= 6 else {
            throw RecordProblem("record is \(record.count) bytes, shorter than a compact header and its checksum")
        }
        guard Int(record[2]) == formatVersion else {
            throw RecordProblem("record format version \(record[2]); this build reads versions 1 and \(formatVersion)")
        }
        guard let codec = RecordCodec(rawValue: record[3]) else { throw RecordProblem("unknown codec id \(record[3])") }
        guard let dtype = ValueType(rawValue: record[4]) else { throw RecordProblem("unknown dtype id \(record[4])") }
        let flags = record[5]
        guard flags & ~knownFlags == 0 else { throw RecordProblem("unknown flag bits \(flags)") }
        guard flags & flagRelative == 0 || codec == .hq else {
            throw RecordProblem("flag bits \(flags): a \(codec.name) record cannot be relative to a model reference (bit 2); only hq records can")
        }
        guard flags & flagInt8RowScales == 0 || codec == .int8 else {
            throw RecordProblem("flag bits \(flags): a \(codec.name) record cannot have int8 row scales (bit 3); only int8 records can")
        }
        var position = 6
        func varint(_ name: String) throws -> Int {
            var value = 0
            for shift in stride(from: 0, to: 35, by: 7) {
                guard position < end else { throw RecordProblem("the header ends inside \(name)") }
                let byte = record[position]
                position += 1
                value |= Int(byte & 0x7f) << shift
                if byte & 0x80 == 0 {
                    guard byte != 0 || shift == 0 else { throw RecordProblem("\(name) is not written in its shortest form") }
                    guard value <= Int(UInt32.max) else { throw RecordProblem("\(name) \(value) exceeds \(UInt32.max)") }
                    return value
                }
            }
            throw RecordProblem("\(name) is longer than 5 bytes")
        }
        let (layers, kvHeads, headDim, tokens) = (try varint("layers"), try varint("kvHeads"), try varint("headDim"), try varint("tokens"))
        let firstPosition = try varint("firstPosition")
        guard layers > 0, kvHeads > 0, headDim > 0, tokens > 0 else {
            throw RecordProblem("zero in shape [layers \(layers), tokens \(tokens), kvHeads \(kvHeads), headDim \(headDim)]")
        }
        var (groupSize, keyBits, valueBits) = (0, 0, 0)
        switch codec {
        case .hq:
            guard position < end else { throw RecordProblem("the header ends before hq's bit widths") }
            (keyBits, valueBits) = (Int(record[position] & 15), Int(record[position] >> 4))
            position += 1
            guard HadamardBody.bitRange.contains(keyBits), HadamardBody.bitRange.contains(valueBits) else {
                throw RecordProblem("hq bit widths \(keyBits)/\(valueBits) are outside \(HadamardBody.bitRange)")
            }
        case .q4:
            groupSize = try varint("groupSize")
            guard groupSize > 0 else { throw RecordProblem("q4 group size 0") }
        case .shuffleZstd, .zstd, .int8: break
        }
        var referenceTag: [UInt8]?
        if flags & flagRelative != 0 {
            guard end - position >= ModelReference.tagLength else { throw RecordProblem("the header ends inside the reference tag") }
            referenceTag = Array(record[position..<(position + ModelReference.tagLength)])
            position += ModelReference.tagLength
        }
        let payloadLength = end - position
        var header = RecordHeader(
            format: formatVersion, codec: codec, dtype: dtype, keysBeforeRoPE: flags & flagKeysBeforeRoPE != 0,
            model: model, image: image, layers: layers, kvHeads: kvHeads, headDim: headDim, tokens: tokens,
            firstPosition: firstPosition, groupSize: groupSize, keyBits: keyBits, valueBits: valueBits,
            int8RowScales: flags & flagInt8RowScales != 0, bodyLength: 0, payloadLength: payloadLength, payloadIsZstd: flags & flagZstd != 0, headerLength: position,
            referenceTag: referenceTag)
        guard let bodyLength = BodyLayout.length(of: header) else {
            throw RecordProblem("the shape [\(layers), \(tokens), \(kvHeads), \(headDim)] is too large for one record")
        }
        header.bodyLength = bodyLength
        guard header.payloadIsZstd || payloadLength == bodyLength else {
            throw RecordProblem("the raw payload is \(payloadLength) bytes; the shape and codec need \(bodyLength)")
        }
        return header
    }

    /// The first 16 bytes of SHA-256(model || image || `covered`), or of
    /// SHA-256(model || image || reference || `covered`) for a record relative to `reference`.
    static func checksum(_ covered: UnsafeRawBufferPointer, model: Digest, image: Digest, reference: Digest? = nil) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: model.bytes)
        hasher.update(data: image.bytes)
        if let reference { hasher.update(data: reference.bytes) }
        hasher.update(bufferPointer: covered)
        return Array(hasher.finalize().prefix(checksumLength))
    }

    /// Unsigned LEB128: 7 bits a byte, least significant first, high bit set on all but the last.
    static func appendVarint(_ value: Int, to out: inout [UInt8]) {
        var v = UInt64(value)
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}
