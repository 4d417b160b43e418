import Foundation

// MARK: - Keys

/// `records` key: model fingerprint (32) + image digest (32) + codec id (1).
public struct RecordKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let model: Digest
    public let image: Digest
    public let codec: RecordCodec

    public init(model: Digest, image: Digest, codec: RecordCodec) {
        self.model = model
        self.image = image
        self.codec = codec
    }

    public init?(_ raw: UnsafeRawBufferPointer) {
        guard raw.count == 65, let model = Digest(UnsafeRawBufferPointer(rebasing: raw[0..<32])),
              let image = Digest(UnsafeRawBufferPointer(rebasing: raw[32..<64])),
              let codec = RecordCodec(rawValue: raw[64]) else { return nil }
        self.init(model: model, image: image, codec: codec)
    }

    public static let byteCount = 65

    /// The 65 key bytes, in the order the records sort.
    public var bytes: [UInt8] { model.bytes + image.bytes + [codec.rawValue] }

    /// `<model hex>/<image hex>/<codec>`: how errors and tools name a record.
    public var description: String { "\(model.hex)/\(image.hex)/\(codec.name)" }

    public static func < (a: RecordKey, b: RecordKey) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

/// A record ready to be written: bytes made outside the write transaction.
public struct EncodedRecord: Sendable {
    public let key: RecordKey
    public let bytes: [UInt8]

    public init(key: RecordKey, bytes: [UInt8]) {
        self.key = key
        self.bytes = bytes
    }
}

/// One record as a scan sees it: its key, header and stored size (the checksum is not verified).
public struct RecordSummary: Sendable {
    public let key: RecordKey
    public let header: RecordHeader
    public let storedBytes: Int
}

