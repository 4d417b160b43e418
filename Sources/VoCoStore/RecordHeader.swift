import SafeTensors

// MARK: - Codec and element type ids (Schemas/record-format.md)

/// How a record's values are turned into payload bytes. Chosen per store, recorded in every record.
public enum RecordCodec: UInt8, CaseIterable, Sendable {
    /// Values in their dtype, byte planes split (Blosc-style shuffle), then zstd. Lossless.
    case shuffleZstd = 1
    /// Values in their dtype, zstd alone (the baseline shuffle is measured against). Lossless.
    case zstd = 2
    /// int8: keys scaled per (layer, channel), values per (layer, token) (KIVI-style), then zstd.
    case int8 = 3
    /// 4-bit asymmetric quantisation in groups of `groupSize` channels per row, then zstd.
    case q4 = 4

    public var name: String {
        switch self {
        case .shuffleZstd: return "shuffle-zstd"
        case .zstd: return "zstd"
        case .int8: return "int8"
        case .q4: return "q4"
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

// MARK: - The fixed 128-byte header

/// Everything needed to check and decode a record, at fixed little-endian offsets.
/// A record is `header (128) || payload (payloadLength) || SHA-256 of both (32)`.
public struct RecordHeader: Equatable, Sendable {
    public static let magic: [UInt8] = Array("VOCOKVR\n".utf8)
    public static let formatVersion: UInt16 = 1
    public static let length = 128
    public static let checksumLength = 32
    static let flagKeysBeforeRoPE: UInt8 = 1
    static let checksumSHA256: UInt8 = 1

    public var codec: RecordCodec
    public var dtype: ValueType
    public var keysBeforeRoPE: Bool
    public var model: Digest
    public var image: Digest
    public var layers: Int
    public var kvHeads: Int
    public var headDim: Int
    public var tokens: Int
    public var firstPosition: Int
    /// q4: channels per quantisation group; 0 for the other codecs.
    public var groupSize: Int
    /// Bytes after zstd decompression.
    public var bodyLength: Int
    /// Bytes stored between header and checksum (one zstd frame).
    public var payloadLength: Int

    public var channels: Int { kvHeads * headDim }
    public var recordLength: Int { Self.length + payloadLength + Self.checksumLength }
    /// The values at their original dtype: layers * 2 * tokens * channels * dtype size.
    public var rawLength: Int { layers * 2 * tokens * channels * dtype.size }

    func encoded() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.length)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { out[offset + i] = b } }
        }
        out.replaceSubrange(0..<8, with: Self.magic)
        put(Self.formatVersion, at: 8)
        put(UInt16(Self.length), at: 10)
        out[12] = codec.rawValue
        out[13] = dtype.rawValue
        out[14] = keysBeforeRoPE ? Self.flagKeysBeforeRoPE : 0
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
    /// Throws the reason as a `RecordProblem`.
    static func decode(_ record: UnsafeRawBufferPointer) throws -> RecordHeader {
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
        guard record[14] & ~Self.flagKeysBeforeRoPE == 0 else { throw RecordProblem("unknown flag bits \(record[14])") }
        guard record[15] == Self.checksumSHA256 else { throw RecordProblem("unknown checksum kind \(record[15])") }
        guard record[120..<128].allSatisfy({ $0 == 0 }) else { throw RecordProblem("reserved header bytes are not zero") }
        let (bodyLength, payloadLength) = (u64(104), u64(112))
        guard payloadLength == UInt64(record.count - Self.length - Self.checksumLength) else {
            throw RecordProblem("header says \(payloadLength) payload bytes but the record holds \(record.count - Self.length - Self.checksumLength)")
        }
        guard bodyLength <= 1 << 40 else { throw RecordProblem("body length \(bodyLength) is implausible") }
        let header = RecordHeader(
            codec: codec, dtype: dtype, keysBeforeRoPE: record[14] & Self.flagKeysBeforeRoPE != 0,
            model: Digest(unchecked: Array(record[16..<48])), image: Digest(unchecked: Array(record[48..<80])),
            layers: u32(80), kvHeads: u32(84), headDim: u32(88), tokens: u32(92),
            firstPosition: u32(96), groupSize: u32(100),
            bodyLength: Int(bodyLength), payloadLength: Int(payloadLength)
        )
        guard header.layers > 0, header.kvHeads > 0, header.headDim > 0, header.tokens > 0 else {
            throw RecordProblem("zero in shape [layers \(header.layers), tokens \(header.tokens), kvHeads \(header.kvHeads), headDim \(header.headDim)]")
        }
        guard (codec == .q4) == (header.groupSize > 0) else {
            throw RecordProblem("group size \(header.groupSize) does not fit codec \(codec.name)")
        }
        guard let expected = BodyLayout.length(of: header), expected == header.bodyLength else {
            throw RecordProblem("body length \(header.bodyLength) does not match the shape and codec")
        }
        return header
    }
}

/// A reason a record is refused; wrapped into `StoreError.corruptRecord` with the key.
struct RecordProblem: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

// MARK: - As JSON (Schemas/record-header.schema.json)

extension RecordHeader: Encodable {
    enum CodingKeys: String, CodingKey {
        case magic, formatVersion, headerLength, codec, dtype, keysBeforeRoPE, checksum
        case model, image, layers, kvHeads, headDim, tokens, firstPosition, groupSize, bodyLength, payloadLength
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(String(decoding: Self.magic, as: UTF8.self), forKey: .magic)
        try c.encode(Self.formatVersion, forKey: .formatVersion)
        try c.encode(Self.length, forKey: .headerLength)
        try c.encode(codec.name, forKey: .codec)
        try c.encode(dtype.name, forKey: .dtype)
        try c.encode(keysBeforeRoPE, forKey: .keysBeforeRoPE)
        try c.encode("sha256", forKey: .checksum)
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
    }
}
