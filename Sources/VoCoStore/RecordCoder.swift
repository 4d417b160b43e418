import Crypto
import Foundation

// MARK: - Codec settings (per store, in `meta`)

/// The codec a store writes with. Stored as JSON in `meta` under `codec`; the fields a codec
/// does not use are left out, so the JSON of the older codecs is what it always was.
public struct CodecSettings: Equatable, Sendable, Codable, CustomStringConvertible {
    public var codec: RecordCodec
    /// zstd compression level (the library's range, 1...19 are the usual ones).
    public var zstdLevel: Int
    /// q4: channels per quantisation group; ignored (and recorded as 0) by the other codecs.
    public var groupSize: Int
    /// hq: bits per key code and per value code (2...8); 0 for the other codecs.
    public var keyBits: Int
    public var valueBits: Int
    /// Write records in format 2 (the compact header). Always for hq; for the older codecs only
    /// when asked, since a format 2 record is read with its key (`RecordCoder.decode(_:model:image:)`).
    public var compactHeader: Bool
    /// hq: N > 0 stores each cache minus its model's reference (ModelReference.swift): the mean
    /// of the model's first N records, which the store keeps once per model; 0 for
    /// self-contained records and for the other codecs.
    public var referenceImages: Int
    /// Whether records are stored relative to their model's reference.
    public var relative: Bool { referenceImages > 0 }

    public static let `default` = CodecSettings(codec: .shuffleZstd)
    /// hq's bit widths when none are given.
    public static let hqDefaultBits = (key: 4, value: 4)

    public init(codec: RecordCodec, zstdLevel: Int = 3, groupSize: Int = 32, keyBits: Int? = nil, valueBits: Int? = nil,
                compactHeader: Bool = false, referenceImages: Int = 0) {
        self.codec = codec
        self.zstdLevel = zstdLevel
        self.groupSize = codec == .q4 ? groupSize : 0
        self.keyBits = codec == .hq ? keyBits ?? Self.hqDefaultBits.key : 0
        self.valueBits = codec == .hq ? valueBits ?? Self.hqDefaultBits.value : 0
        self.compactHeader = codec == .hq || compactHeader
        self.referenceImages = codec == .hq ? referenceImages : 0
    }

    /// Images whose records make a model's reference when `ref` is given without a number.
    public static let defaultReferenceImages = 16

    /// What a relative store writes a model's records with until the model has its reference:
    /// self-contained hq at 8 bits (their mean becomes the reference).
    public var calibration: CodecSettings {
        CodecSettings(codec: .hq, zstdLevel: zstdLevel, keyBits: 8, valueBits: 8)
    }

    /// `NAME[:OPTION,...]`, options `k=BITS`, `v=BITS`, `ref` or `ref=N` (hq: relative to the mean
    /// of the model's first N records, 16 by default), `group=N` (q4), `level=N` (zstd level),
    /// `compact` (format 2 for the older codecs): `hq:k=5,v=4`, `hq:k=4,v=4,ref`, `q4:group=64`,
    /// `shuffle-zstd:compact`.
    public init(parsing spec: String) throws {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard let name = parts.first, let codec = RecordCodec(name: name) else {
            throw StoreError.invalidCodec("unknown codec in '\(spec)'; the codecs are \(RecordCodec.allCases.map(\.name).joined(separator: ", "))")
        }
        var settings = CodecSettings(codec: codec)
        for option in parts.count > 1 ? parts[1].split(separator: ",").map(String.init) : [] {
            let pair = option.split(separator: "=", maxSplits: 1).map(String.init)
            let number = pair.count == 2 ? Int(pair[1]) : nil
            switch (pair[0], number) {
            case ("compact", _) where pair.count == 1: settings.compactHeader = true
            case ("ref", _) where pair.count == 1 && codec == .hq: settings.referenceImages = Self.defaultReferenceImages
            case ("ref", let n?) where codec == .hq:
                guard Self.referenceImageRange.contains(n) else {
                    throw StoreError.invalidCodec("'\(option)' in '\(spec)': a reference is the mean of \(Self.referenceImageRange) records")
                }
                settings.referenceImages = n
            case ("level", let n?): settings.zstdLevel = n
            case ("group", let n?) where codec == .q4: settings.groupSize = n
            case ("k", let n?) where codec == .hq: settings.keyBits = n
            case ("v", let n?) where codec == .hq: settings.valueBits = n
            default:
                throw StoreError.invalidCodec("'\(option)' in '\(spec)' is not an option of \(codec.name) (k=BITS, v=BITS and ref[=N] for hq, group=N for q4, level=N, compact)")
            }
        }
        self = try settings.validated()
    }

    public func validated() throws -> CodecSettings {
        guard Zstd.levels.contains(zstdLevel) else {
            throw StoreError.invalidCodec("zstd level \(zstdLevel) is outside \(Zstd.levels)")
        }
        if codec == .q4, !(2...4096).contains(groupSize) || groupSize % 2 != 0 {
            throw StoreError.invalidCodec("q4 group size \(groupSize) must be even and in 2...4096")
        }
        if codec == .hq, !HadamardBody.bitRange.contains(keyBits) || !HadamardBody.bitRange.contains(valueBits) {
            throw StoreError.invalidCodec("hq bits per key \(keyBits) and per value \(valueBits) must be in \(HadamardBody.bitRange)")
        }
        if relative, !Self.referenceImageRange.contains(referenceImages) {
            throw StoreError.invalidCodec("hq ref=\(referenceImages): a reference is the mean of \(Self.referenceImageRange) records")
        }
        return self
    }

    static let referenceImageRange = 1...1024

    public var description: String {
        var details = ["zstd \(zstdLevel)"]
        if codec == .q4 { details.append("groups of \(groupSize)") }
        if codec != .hq, compactHeader { details.append("compact header") }
        if relative { details.append("ref=\(referenceImages)") }
        let name = codec == .hq ? "hq K\(keyBits)/V\(valueBits)" : codec.name
        return "\(name) (\(details.joined(separator: ", ")))"
    }

    enum CodingKeys: String, CodingKey { case codec, zstdLevel, groupSize, keyBits, valueBits, compactHeader, referenceImages }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .codec)
        guard let codec = RecordCodec(name: name) else {
            throw DecodingError.dataCorruptedError(forKey: .codec, in: c, debugDescription: "unknown codec '\(name)'")
        }
        self.init(codec: codec, zstdLevel: try c.decode(Int.self, forKey: .zstdLevel), groupSize: try c.decode(Int.self, forKey: .groupSize),
                  keyBits: try c.decodeIfPresent(Int.self, forKey: .keyBits), valueBits: try c.decodeIfPresent(Int.self, forKey: .valueBits),
                  compactHeader: try c.decodeIfPresent(Bool.self, forKey: .compactHeader) ?? false,
                  referenceImages: try c.decodeIfPresent(Int.self, forKey: .referenceImages) ?? 0)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(codec.name, forKey: .codec)
        try c.encode(zstdLevel, forKey: .zstdLevel)
        try c.encode(groupSize, forKey: .groupSize)
        if codec == .hq {
            try c.encode(keyBits, forKey: .keyBits)
            try c.encode(valueBits, forKey: .valueBits)
            if relative { try c.encode(referenceImages, forKey: .referenceImages) }
        } else if compactHeader {
            try c.encode(true, forKey: .compactHeader)
        }
    }
}

// MARK: - Record bytes <-> tensors

/// Turns a cache into record bytes and back. Decoding checks everything: header, checksum,
/// zstd frame and body length; the caller adds the key and the model it expected.
public enum RecordCoder {
    /// Format 1: `header || zstd(body) || SHA-256(header || zstd(body))`. Format 2 (hq, or
    /// `compactHeader`): `compact header || payload || checksum`, the payload zstd(body) when that
    /// is smaller than the body, else the body.
    /// A `relative` codec stores `kv - reference` (which must be `model`'s) and binds the
    /// reference's digest into the checksum.
    public static func encode(_ kv: KVTensors, model: Digest, image: Digest, dtype: ValueType, settings: CodecSettings,
                              reference: ModelReference? = nil) throws -> [UInt8] {
        if let problem = kv.problem() { throw StoreError.invalidTensors(image: image, reason: problem) }
        var kv = kv
        let bound = settings.relative ? reference : nil  // the reference this record is relative to
        if settings.relative {
            guard let reference, reference.model == model else {
                throw StoreError.invalidArgument("codec \(settings) stores caches relative to their model's reference, and "
                    + (reference.map { "the one given is model \($0.model.hex)'s, not \(model.hex)'s" } ?? "none was given for model \(model.hex)"))
            }
            kv = try reference.subtract(from: kv, image: image)
        }
        let body: [UInt8]
        var int8RowScales = false
        var partEnds: [Int] = []  // where the byte planes, the scales or the code streams start: zstd blocks end there
        do {
            switch settings.codec {
            case .shuffleZstd:
                body = LosslessBody.encode(kv, dtype: dtype, shuffled: true)
                partEnds = (1..<dtype.size).map { $0 * body.count / dtype.size }
            case .zstd:
                body = LosslessBody.encode(kv, dtype: dtype, shuffled: false)
            case .int8:
                (body, int8RowScales) = try Int8Body.encode(kv)
                partEnds = [kv.count * 2]
            case .q4:
                body = try Q4Body.encode(kv, groupSize: settings.groupSize)
                partEnds = [kv.layers * 2 * kv.tokens * ((kv.channels + 1) / 2)]
            case .hq:
                body = try HadamardBody.encode(kv, keyBits: settings.keyBits, valueBits: settings.valueBits)
                let parameters = 2 * kv.layers * 2 * kv.tokens * kv.kvHeads
                partEnds = [parameters, parameters + HadamardBody.streamLength(kv.count, bits: settings.keyBits)]
            }
        } catch let problem as RecordProblem {
            throw StoreError.invalidTensors(image: image, reason: problem.reason)
        }
        var payload = try body.withUnsafeBytes { try Zstd.compress($0, partEnds: partEnds, level: settings.zstdLevel) }
        let compact = settings.compactHeader || settings.codec == .hq
        let stored = compact && payload.count >= body.count
        if stored { payload = body }
        var header = RecordHeader(
            format: compact ? CompactHeader.formatVersion : 1, codec: settings.codec, dtype: dtype, keysBeforeRoPE: kv.keysBeforeRoPE,
            model: model, image: image, layers: kv.layers, kvHeads: kv.kvHeads, headDim: kv.headDim, tokens: kv.tokens,
            firstPosition: kv.firstPosition, groupSize: settings.codec == .q4 ? settings.groupSize : 0,
            keyBits: settings.keyBits, valueBits: settings.valueBits, int8RowScales: int8RowScales,
            bodyLength: body.count, payloadLength: payload.count, payloadIsZstd: !stored, referenceTag: bound?.tag)
        var record = header.encoded()
        header.headerLength = record.count
        record.reserveCapacity(header.recordLength)
        record += payload
        record += record.withUnsafeBytes { covered in
            compact ? CompactHeader.checksum(covered, model: model, image: image, reference: bound?.digest) : Digest.sha256(covered).bytes
        }
        return record
    }

    /// The header of a format 1 record, after its checksum has been verified. A format 2 record
    /// is refused: its checksum can only be checked with its key.
    static func verifiedHeader(_ record: UnsafeRawBufferPointer) throws -> RecordHeader {
        guard !CompactHeader.isCompact(record) else {
            throw RecordProblem("a format 2 record is checked with the model and image of its key (RecordCoder.decode(_:model:image:))")
        }
        let header = try RecordHeader.decode(record)
        try verifyChecksum(record, header: header, model: header.model, image: header.image, reference: nil)
        return header
    }

    /// The header of a record stored under `model` and `image`, after its checksum has been
    /// verified; a format 1 header must name them. A record relative to its model's reference
    /// needs that reference (`reference`; ignored for the other records).
    public static func verifiedHeader(_ record: UnsafeRawBufferPointer, model: Digest, image: Digest,
                                      reference: ModelReference? = nil) throws -> RecordHeader {
        let header = try RecordHeader.decode(record, model: model, image: image)
        let bound = header.isRelative ? try relativeReference(reference, for: header) : nil
        try verifyChecksum(record, header: header, model: model, image: image, reference: bound)
        if let bound, let mismatch = bound.mismatch(layers: header.layers, tokens: header.tokens, kvHeads: header.kvHeads, headDim: header.headDim) {
            throw RecordProblem("its \(mismatch)")
        }
        guard header.model == model else { throw RecordProblem("the header names model \(header.model.hex), not the key's \(model.hex)") }
        guard header.image == image else { throw RecordProblem("the header names image \(header.image.hex), not the key's \(image.hex)") }
        return header
    }

    private static func verifyChecksum(_ record: UnsafeRawBufferPointer, header: RecordHeader, model: Digest, image: Digest,
                                       reference: ModelReference?) throws {
        let split = record.count - header.checksumLength
        let covered = UnsafeRawBufferPointer(rebasing: record[0..<split])
        let expected = header.format == 1 ? Digest.sha256(covered).bytes
            : CompactHeader.checksum(covered, model: model, image: image, reference: reference?.digest)
        guard expected.elementsEqual(record[split...]) else {
            if let reference, let tag = header.referenceTag, tag != reference.tag {
                throw RecordProblem("it was written against reference \(ModelReference.hex(tag))..., not against model \(model.hex)'s reference \(reference.digest.hex) (or its bytes changed after it was written)")
            }
            throw RecordProblem(header.format == 1 ? "checksum mismatch (the record's bytes changed after it was written)"
                : "checksum mismatch (the record's bytes changed after it was written, or it is read under another model or image)")
        }
    }

    /// The reference a relative record is decoded against: it must be given, and be its model's.
    private static func relativeReference(_ reference: ModelReference?, for h: RecordHeader) throws -> ModelReference {
        guard let reference else {
            throw RecordProblem("it is stored relative to model \(h.model.hex)'s reference (digest \(ModelReference.hex(h.referenceTag ?? []))...), which is missing (record \(ModelReference.key(model: h.model)))")
        }
        guard reference.model == h.model else {
            throw RecordProblem("it is stored relative to model \(h.model.hex)'s reference, and the reference given is model \(reference.model.hex)'s")
        }
        return reference
    }

    /// Verifies and decodes a whole record stored under `model` and `image` (any format): what a
    /// store reads. A record that does not check out throws `RecordProblem`; so does one relative
    /// to its model's reference when `reference` is not that reference.
    public static func decode(_ record: UnsafeRawBufferPointer, model: Digest, image: Digest,
                              reference: ModelReference? = nil) throws -> (RecordHeader, KVTensors) {
        let header = try verifiedHeader(record, model: model, image: image, reference: reference)
        return try decodeBody(record, header: header, reference: header.isRelative ? reference : nil)
    }

    /// Verifies and decodes a whole format 1 record.
    static func decode(_ record: UnsafeRawBufferPointer) throws -> (RecordHeader, KVTensors) {
        try decodeBody(record, header: try verifiedHeader(record))
    }

    private static func decodeBody(_ record: UnsafeRawBufferPointer, header h: RecordHeader,
                                   reference: ModelReference? = nil) throws -> (RecordHeader, KVTensors) {
        // A record whose header passes every check may still describe more values than this
        // machine can hold: refused, not met with a failed allocation.
        let needed = h.bodyLength.addingSaturating(h.rawLength / h.dtype.size * 8)
        guard UInt64(needed) <= ProcessInfo.processInfo.physicalMemory else {
            throw RecordProblem("decoding it needs \(needed) bytes, more than this machine's memory (\(ProcessInfo.processInfo.physicalMemory))")
        }
        let payload = UnsafeRawBufferPointer(rebasing: record[h.headerLength..<(h.headerLength + h.payloadLength)])
        let body = UnsafeMutableRawBufferPointer.allocate(byteCount: max(h.bodyLength, 1), alignment: 16)
        defer { body.deallocate() }
        let exactBody = UnsafeMutableRawBufferPointer(rebasing: body[0..<h.bodyLength])
        if h.payloadIsZstd {
            try Zstd.decompress(payload, into: exactBody)
        } else {
            exactBody.copyMemory(from: payload)
        }
        if h.codec == .hq { try HadamardBody.checkParameters(UnsafeRawBufferPointer(exactBody), header: h) }
        let count = h.layers * h.tokens * h.channels
        // Every codec's decoder writes every element, so the buffers start uninitialised.
        var values: [Float] = []  // [layers][tokens][channels]
        let keys = [Float](unsafeUninitializedCapacity: count) { k, keysWritten in  // [layers][tokens][channels]
            values = [Float](unsafeUninitializedCapacity: count) { v, valuesWritten in
                let (source, kp, vp) = (UnsafeRawBufferPointer(exactBody), k.baseAddress!, v.baseAddress!)
                switch h.codec {
                case .shuffleZstd: LosslessBody.decode(source, header: h, shuffled: true, keys: kp, values: vp)
                case .zstd: LosslessBody.decode(source, header: h, shuffled: false, keys: kp, values: vp)
                case .int8: Int8Body.decode(source, header: h, keys: kp, values: vp)
                case .q4: Q4Body.decode(source, header: h, keys: kp, values: vp)
                case .hq: HadamardBody.decode(source, header: h, keys: kp, values: vp)
                }
                reference?.add(keys: kp, values: vp)
                valuesWritten = count
            }
            keysWritten = count
        }
        let kv = KVTensors(layers: h.layers, tokens: h.tokens, kvHeads: h.kvHeads, headDim: h.headDim,
                           firstPosition: h.firstPosition, keysBeforeRoPE: h.keysBeforeRoPE, keys: keys, values: values)
        return (h, kv)
    }
}
