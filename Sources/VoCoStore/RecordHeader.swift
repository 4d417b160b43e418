import SafeTensors

// MARK: - Codec and element type ids (Schemas/record-format.md)

/// How a record's values are turned into payload bytes. Chosen per store, recorded in every record.
public enum RecordCodec: UInt8, CaseIterable, Sendable {
    /// Values in their dtype, byte planes split (Blosc-style shuffle), then zstd. Lossless.
    case shuffleZstd = 1
    /// Values in their dtype, zstd alone (the baseline shuffle is measured against). Lossless.
    case zstd = 2
    /// int8: keys scaled per (layer, channel), values per (layer, token) (KIVI-style), or, when that
    /// would be larger than the F16 values (few rows), a bfloat16 scale per row; then zstd.
    case int8 = 3
    /// 4-bit asymmetric quantisation in groups of `groupSize` channels per row, then zstd.
    case q4 = 4
    /// Per head: a Walsh-Hadamard rotation where it lowers the error, then `keyBits`/`valueBits`
    /// symmetric codes with one bfloat16 step per (row, head); zstd only when it shrinks them.
    case hq = 5

    public var name: String {
        switch self {
        case .shuffleZstd: return "shuffle-zstd"
        case .zstd: return "zstd"
        case .int8: return "int8"
        case .q4: return "q4"
        case .hq: return "hq"
        }
    }

    public init?(name: String) {
        guard let codec = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = codec
    }

    public var isLossless: Bool { self == .shuffleZstd || self == .zstd }
}

/// The element type of the original values (what a lossless record holds exactly).
public enum ValueType: UInt8, CaseIterable, Sendable {
    case f32 = 1, f16 = 2, bf16 = 3

    public var dtype: DType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }

    public init?(_ dtype: DType) {
        switch dtype {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        default: return nil
        }
    }

    /// "F32", "F16", "BF16" (safetensors names).
    public var name: String { dtype.rawValue }
    public var size: Int { dtype.size }
}

// MARK: - The header: format 1 (fixed, 128 bytes) or 2 (compact, CompactHeader.swift)

/// Everything needed to check and decode a record. Format 1 is
/// `header (128) || payload (payloadLength) || SHA-256 of both (32)`, with the model and image
/// digests inside; format 2 is `compact header || payload || checksum (16)`, whose checksum binds
/// the model and image of the record's key instead of repeating them.
public struct RecordHeader: Equatable, Sendable {
    public static let magic: [UInt8] = Array("VOCOKVR\n".utf8)
    public static let formatVersion: UInt16 = 1
    public static let length = 128
    public static let checksumLength = 32
    static let flagKeysBeforeRoPE: UInt8 = 1
    /// int8 only, in both formats: the body has a bfloat16 scale per row (Int8Body) instead of
    /// Float32 scales per key channel and value token. Bit 3, so that it means the same in format 2.
    static let flagInt8RowScales: UInt8 = 8
    static let checksumSHA256: UInt8 = 1

    /// 1 or 2 (`CompactHeader.formatVersion`).
    public var format: Int
    public var codec: RecordCodec
    public var dtype: ValueType
    public var keysBeforeRoPE: Bool
    /// Format 2 does not hold these: they come from the record's key (the checksum binds them).
    public var model: Digest
    public var image: Digest
    public var layers: Int
    public var kvHeads: Int
    public var headDim: Int
    public var tokens: Int
    public var firstPosition: Int
    /// q4: channels per quantisation group; 0 for the other codecs.
    public var groupSize: Int
    /// hq: bits per key code and per value code; 0 for the other codecs.
    public var keyBits: Int
    public var valueBits: Int
    /// int8: the body has one bfloat16 scale per row (flag bit 3) rather than Float32 scales per
    /// key channel and value token; false for the other codecs.
    public var int8RowScales: Bool
    /// Bytes of the body (the payload after zstd decompression, or the payload itself).
    public var bodyLength: Int
    /// Bytes stored between header and checksum.
    public var payloadLength: Int
    /// Whether the payload is one zstd frame (always in format 1) or the body itself.
    public var payloadIsZstd: Bool
    /// Where the payload starts: 128 in format 1, the compact header's length in format 2.
    public var headerLength: Int
    /// Format 2, hq only: the first 4 bytes of the digest of the model's reference the record's
    /// values are relative to (ModelReference.swift); nil for a self-contained record.
    public var referenceTag: [UInt8]?

    init(format: Int = 1, codec: RecordCodec, dtype: ValueType, keysBeforeRoPE: Bool, model: Digest, image: Digest,
         layers: Int, kvHeads: Int, headDim: Int, tokens: Int, firstPosition: Int, groupSize: Int = 0,
         keyBits: Int = 0, valueBits: Int = 0, int8RowScales: Bool = false, bodyLength: Int, payloadLength: Int, payloadIsZstd: Bool = true,
         headerLength: Int = RecordHeader.length, referenceTag: [UInt8]? = nil) {
        self.format = format
        self.codec = codec
        self.dtype = dtype
        self.keysBeforeRoPE = keysBeforeRoPE
        self.model = model
        self.image = image
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.tokens = tokens
        self.firstPosition = firstPosition
        self.groupSize = groupSize
        self.keyBits = keyBits
        self.valueBits = valueBits
        self.int8RowScales = int8RowScales
        self.bodyLength = bodyLength
        self.payloadLength = payloadLength
        self.payloadIsZstd = payloadIsZstd
        self.headerLength = headerLength
        self.referenceTag = referenceTag
    }

    /// Whether the record holds its values minus its model's reference.
    public var isRelative: Bool { referenceTag != nil }

    public var channels: Int { kvHeads * headDim }
    /// 32 (SHA-256) in format 1, 16 in format 2.
    public var checksumLength: Int { format == 1 ? Self.checksumLength : CompactHeader.checksumLength }
    public var recordLength: Int { headerLength + payloadLength + checksumLength }
    /// The values at their original dtype: layers * 2 * tokens * channels * dtype size.
    public var rawLength: Int { layers * 2 * tokens * channels * dtype.size }

    /// The header's bytes in its format.
    func encoded() -> [UInt8] {
        format == 1 ? encodedFormat1() : CompactHeader.encode(self)
    }

    private func encodedFormat1() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.length)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { out[offset + i] = b } }
        }
        out.replaceSubrange(0..<8, with: Self.magic)
        put(Self.formatVersion, at: 8)
        put(UInt16(Self.length), at: 10)
        out[12] = codec.rawValue
        out[13] = dtype.rawValue
        out[14] = (keysBeforeRoPE ? Self.flagKeysBeforeRoPE : 0) | (int8RowScales ? Self.flagInt8RowScales : 0)
        out[15] = Self.checksumSHA256
        out.replaceSubrange(16..<48, with: model.bytes)
        out.replaceSubrange(48..<80, with: image.bytes)
        put(UInt32(layers), at: 80)
        put(UInt32(kvHeads), at: 84)
        put(UInt32(headDim), at: 88)
        put(UInt32(tokens), at: 92)
        put(UInt32(firstPosition), at: 96)
        put(UInt32(groupSize), at: 100)
        put(UInt64(bodyLength), at: 104)
        put(UInt64(payloadLength), at: 112)
        return out
    }

    /// Parses and checks the header at the start of `record` (the whole stored value): magic,
    /// version, known ids, positive shapes, and the record length that the header implies.
    /// A format 2 record holds no digests: its `model` and `image` are all zeros here (use
    /// `decode(_:model:image:)` with the record's key). Throws the reason as a `RecordProblem`.
    static func decode(_ record: UnsafeRawBufferPointer) throws -> RecordHeader {
        if CompactHeader.isCompact(record) {
            return try CompactHeader.decode(record, model: Digest(unchecked: Array(repeating: 0, count: 32)),
                                            image: Digest(unchecked: Array(repeating: 0, count: 32)))
        }
        return try decodeFormat1(record)
    }

    /// The header of a record stored under `model` and `image` (its key): format 1 as it is
    /// written (`RecordCoder` checks that it names them), format 2 with them (its checksum,
    /// checked by `RecordCoder`, binds them).
    static func decode(_ record: UnsafeRawBufferPointer, model: Digest, image: Digest) throws -> RecordHeader {
        if CompactHeader.isCompact(record) { return try CompactHeader.decode(record, model: model, image: image) }
        return try decodeFormat1(record)
    }

    private static func decodeFormat1(_ record: UnsafeRawBufferPointer) throws -> RecordHeader {
        guard record.count >= Self.length + Self.checksumLength else {
            throw RecordProblem("record is \(record.count) bytes, shorter than header and checksum (\(Self.length + Self.checksumLength))")
        }
        func u16(_ o: Int) -> UInt16 { UInt16(littleEndian: record.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: record.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: record.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        guard Array(record[0..<8]) == Self.magic else { throw RecordProblem("bad magic (not a VoCo KV record)") }
        guard u16(8) == Self.formatVersion else {
            throw RecordProblem("record format version \(u16(8)); this build reads version \(Self.formatVersion)")
        }
        guard u16(10) == UInt16(Self.length) else { throw RecordProblem("header length \(u16(10)), expected \(Self.length)") }
        guard let codec = RecordCodec(rawValue: record[12]) else { throw RecordProblem("unknown codec id \(record[12])") }
        guard let dtype = ValueType(rawValue: record[13]) else { throw RecordProblem("unknown dtype id \(record[13])") }
        guard record[14] & ~(Self.flagKeysBeforeRoPE | Self.flagInt8RowScales) == 0 else { throw RecordProblem("unknown flag bits \(record[14])") }
        guard record[14] & Self.flagInt8RowScales == 0 || codec == .int8 else {
            throw RecordProblem("flag bits \(record[14]): a \(codec.name) record cannot have int8 row scales (bit 3); only int8 records can")
        }
        guard record[15] == Self.checksumSHA256 else { throw RecordProblem("unknown checksum kind \(record[15])") }
        guard record[120..<128].allSatisfy({ $0 == 0 }) else { throw RecordProblem("reserved header bytes are not zero") }
        let (bodyLength, payloadLength) = (u64(104), u64(112))
        guard payloadLength == UInt64(record.count - Self.length - Self.checksumLength) else {
            throw RecordProblem("header says \(payloadLength) payload bytes but the record holds \(record.count - Self.length - Self.checksumLength)")
        }
        guard bodyLength <= 1 << 40 else { throw RecordProblem("body length \(bodyLength) is implausible") }
        let header = RecordHeader(
            format: 1, codec: codec, dtype: dtype, keysBeforeRoPE: record[14] & Self.flagKeysBeforeRoPE != 0,
            model: Digest(unchecked: Array(record[16..<48])), image: Digest(unchecked: Array(record[48..<80])),
            layers: u32(80), kvHeads: u32(84), headDim: u32(88), tokens: u32(92),
            firstPosition: u32(96), groupSize: u32(100), int8RowScales: record[14] & Self.flagInt8RowScales != 0,
            bodyLength: Int(bodyLength), payloadLength: Int(payloadLength)
        )
        guard header.layers > 0, header.kvHeads > 0, header.headDim > 0, header.tokens > 0 else {
            throw RecordProblem("zero in shape [layers \(header.layers), tokens \(header.tokens), kvHeads \(header.kvHeads), headDim \(header.headDim)]")
        }
        guard (codec == .q4) == (header.groupSize > 0) else {
            throw RecordProblem("group size \(header.groupSize) does not fit codec \(codec.name)")
        }
        guard codec != .hq else { throw RecordProblem("codec hq is only written in format 2") }
        guard let expected = BodyLayout.length(of: header), expected == header.bodyLength else {
            throw RecordProblem("body length \(header.bodyLength) does not match the shape and codec")
        }
        return header
    }
}

/// A reason a record is refused; the store wraps it into `StoreError.corruptRecord` with the key.
public struct RecordProblem: Error, CustomStringConvertible {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { "record refused: \(reason)" }
}

// MARK: - As JSON (Schemas/record-header.schema.json)

extension RecordHeader: Encodable {
    enum CodingKeys: String, CodingKey {
        case magic, formatVersion, headerLength, codec, dtype, keysBeforeRoPE, checksum
        case model, image, layers, kvHeads, headDim, tokens, firstPosition, groupSize, bodyLength, payloadLength
        case keyBits, valueBits, payload, reference, int8Scales
    }

    /// Format 1 gives the fields at their offsets; format 2 adds how the payload is stored and,
    /// for hq, the bit widths and the reference tag of a relative record (its model and image
    /// are those of the key it was read under).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        let compact = format == CompactHeader.formatVersion
        try c.encode(String(decoding: compact ? CompactHeader.magic : Self.magic, as: UTF8.self), forKey: .magic)
        try c.encode(format, forKey: .formatVersion)
        try c.encode(headerLength, forKey: .headerLength)
        try c.encode(codec.name, forKey: .codec)
        try c.encode(dtype.name, forKey: .dtype)
        try c.encode(keysBeforeRoPE, forKey: .keysBeforeRoPE)
        try c.encode(compact ? CompactHeader.checksumName : "sha256", forKey: .checksum)
        try c.encode(model, forKey: .model)
        try c.encode(image, forKey: .image)
        try c.encode(layers, forKey: .layers)
        try c.encode(kvHeads, forKey: .kvHeads)
        try c.encode(headDim, forKey: .headDim)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(firstPosition, forKey: .firstPosition)
        try c.encode(groupSize, forKey: .groupSize)
        try c.encode(bodyLength, forKey: .bodyLength)
        try c.encode(payloadLength, forKey: .payloadLength)
        if codec == .int8 { try c.encode(int8RowScales ? "rows" : "channels", forKey: .int8Scales) }
        if compact {
            try c.encode(payloadIsZstd ? "zstd" : "raw", forKey: .payload)
            if codec == .hq {
                try c.encode(keyBits, forKey: .keyBits)
                try c.encode(valueBits, forKey: .valueBits)
            }
            if let referenceTag { try c.encode(ModelReference.hex(referenceTag), forKey: .reference) }
        }
    }
}
