import Crypto
import Foundation

// MARK: - Codec settings (per store, in `meta`)

/// The codec a store writes with. Stored as JSON in `meta` under `codec`.
public struct CodecSettings: Equatable, Sendable, Codable, CustomStringConvertible {
    public var codec: RecordCodec
    /// zstd compression level (the library's range, 1...19 are the usual ones).
    public var zstdLevel: Int
    /// q4: channels per quantisation group; ignored (and recorded as 0) by the other codecs.
    public var groupSize: Int

    public static let `default` = CodecSettings(codec: .shuffleZstd)

    public init(codec: RecordCodec, zstdLevel: Int = 3, groupSize: Int = 32) {
        self.codec = codec
        self.zstdLevel = zstdLevel
        self.groupSize = codec == .q4 ? groupSize : 0
    }

    public func validated() throws -> CodecSettings {
        guard Zstd.levels.contains(zstdLevel) else {
            throw StoreError.invalidCodec("zstd level \(zstdLevel) is outside \(Zstd.levels)")
        }
        if codec == .q4, !(2...4096).contains(groupSize) || groupSize % 2 != 0 {
            throw StoreError.invalidCodec("q4 group size \(groupSize) must be even and in 2...4096")
        }
        return self
    }

    public var description: String {
        codec == .q4 ? "\(codec.name) (zstd \(zstdLevel), groups of \(groupSize))" : "\(codec.name) (zstd \(zstdLevel))"
    }

    enum CodingKeys: String, CodingKey { case codec, zstdLevel, groupSize }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .codec)
        guard let codec = RecordCodec(name: name) else {
            throw DecodingError.dataCorruptedError(forKey: .codec, in: c, debugDescription: "unknown codec '\(name)'")
        }
        self.init(codec: codec, zstdLevel: try c.decode(Int.self, forKey: .zstdLevel), groupSize: try c.decode(Int.self, forKey: .groupSize))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(codec.name, forKey: .codec)
        try c.encode(zstdLevel, forKey: .zstdLevel)
        try c.encode(groupSize, forKey: .groupSize)
    }
}

// MARK: - Record bytes <-> tensors

/// Turns a cache into record bytes and back. Decoding checks everything: header, checksum,
/// zstd frame and body length; the caller adds the key and the model it expected.
public enum RecordCoder {
    /// `header || zstd(body) || SHA-256(header || zstd(body))`.
    public static func encode(_ kv: KVTensors, model: Digest, image: Digest, dtype: ValueType, settings: CodecSettings) throws -> [UInt8] {
        if let problem = kv.problem() { throw StoreError.invalidTensors(image: image, reason: problem) }
        let body: [UInt8]
        var partEnds: [Int] = []  // where the byte planes or the scales start: zstd blocks end there
        do {
            switch settings.codec {
            case .shuffleZstd:
                body = LosslessBody.encode(kv, dtype: dtype, shuffled: true)
                partEnds = (1..<dtype.size).map { $0 * body.count / dtype.size }
            case .zstd:
                body = LosslessBody.encode(kv, dtype: dtype, shuffled: false)
            case .int8:
                body = try Int8Body.encode(kv)
                partEnds = [kv.count * 2]
            case .q4:
                body = try Q4Body.encode(kv, groupSize: settings.groupSize)
                partEnds = [kv.layers * 2 * kv.tokens * ((kv.channels + 1) / 2)]
            }
        } catch let problem as RecordProblem {
            throw StoreError.invalidTensors(image: image, reason: problem.reason)
        }
        let payload = try body.withUnsafeBytes { try Zstd.compress($0, partEnds: partEnds, level: settings.zstdLevel) }
        let header = RecordHeader(
            codec: settings.codec, dtype: dtype, keysBeforeRoPE: kv.keysBeforeRoPE, model: model, image: image,
            layers: kv.layers, kvHeads: kv.kvHeads, headDim: kv.headDim, tokens: kv.tokens,
            firstPosition: kv.firstPosition, groupSize: settings.codec == .q4 ? settings.groupSize : 0,
            bodyLength: body.count, payloadLength: payload.count
        )
        var record = header.encoded()
        record.reserveCapacity(header.recordLength)
        record += payload
        let checksum = record.withUnsafeBytes { Digest.sha256($0) }
        record += checksum.bytes
        return record
    }

    /// The header of a record, after its checksum has been verified.
    static func verifiedHeader(_ record: UnsafeRawBufferPointer) throws -> RecordHeader {
        let header = try RecordHeader.decode(record)
        let covered = UnsafeRawBufferPointer(rebasing: record[0..<(record.count - RecordHeader.checksumLength)])
        let stored = record[(record.count - RecordHeader.checksumLength)...]
        guard Digest.sha256(covered).bytes.elementsEqual(stored) else {
            throw RecordProblem("checksum mismatch (the record's bytes changed after it was written)")
        }
        return header
    }

    /// Verifies and decodes a whole record.
    static func decode(_ record: UnsafeRawBufferPointer) throws -> (RecordHeader, KVTensors) {
        let h = try verifiedHeader(record)
        // A record whose header passes every check may still describe more values than this
        // machine can hold: refused, not met with a failed allocation.
        let needed = h.bodyLength.addingSaturating(h.rawLength / h.dtype.size * 8)
        guard UInt64(needed) <= ProcessInfo.processInfo.physicalMemory else {
            throw RecordProblem("decoding it needs \(needed) bytes, more than this machine's memory (\(ProcessInfo.processInfo.physicalMemory))")
        }
        let payload = UnsafeRawBufferPointer(rebasing: record[RecordHeader.length..<(RecordHeader.length + h.payloadLength)])
        let body = UnsafeMutableRawBufferPointer.allocate(byteCount: max(h.bodyLength, 1), alignment: 16)
        defer { body.deallocate() }
        let exactBody = UnsafeMutableRawBufferPointer(rebasing: body[0..<h.bodyLength])
        try Zstd.decompress(payload, into: exactBody)
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
                }
                valuesWritten = count
            }
            keysWritten = count
        }
        let kv = KVTensors(layers: h.layers, tokens: h.tokens, kvHeads: h.kvHeads, headDim: h.headDim,
                           firstPosition: h.firstPosition, keysBeforeRoPE: h.keysBeforeRoPE, keys: keys, values: values)
        return (h, kv)
    }
}
