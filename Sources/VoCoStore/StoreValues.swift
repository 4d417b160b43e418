import Foundation

// MARK: - Values (JSON, Schemas/store-values.schema.json)

/// `images`: what is known about an image file, keyed by the SHA-256 of its bytes.
public struct ImageInfo: Codable, Equatable, Sendable {
    public var byteCount: Int
    /// "jpeg", "png", ...
    public var format: String
    public var width: Int
    public var height: Int
    /// Every name (path or file name) the image was ingested under, first one first.
    public var sourceNames: [String]
    /// ISO 8601 time it was first ingested.
    public var firstSeen: String

    public init(byteCount: Int, format: String, width: Int, height: Int, sourceNames: [String], firstSeen: String = Date().ISO8601Format()) {
        self.byteCount = byteCount
        self.format = format
        self.width = width
        self.height = height
        self.sourceNames = sourceNames
        self.firstSeen = firstSeen
    }
}

/// `jobs`: one image waiting to be ingested (or done, or failed), so a restarted ingest resumes.
public struct IngestJob: Codable, Equatable, Sendable {
    public enum State: String, Codable, Sendable { case queued, running, done, failed }

    public var collection: String
    /// The image file as the user named it.
    public var source: String
    public var model: Digest
    public var state: State
    public var attempts: Int
    /// Known once the file has been read.
    public var imageDigest: Digest?
    /// Why the last attempt failed.
    public var error: String?
    public var enqueuedAt: String
    public var updatedAt: String
    /// The worker holding a `running` job, and until when (ISO 8601); nil otherwise.
    public var worker: String?
    public var leaseUntil: String?

    public init(collection: String, source: String, model: Digest, state: State = .queued, attempts: Int = 0,
                imageDigest: Digest? = nil, error: String? = nil, enqueuedAt: String = Date().ISO8601Format()) {
        self.collection = collection
        self.source = source
        self.model = model
        self.state = state
        self.attempts = attempts
        self.imageDigest = imageDigest
        self.error = error
        self.enqueuedAt = enqueuedAt
        self.updatedAt = enqueuedAt
    }
}

/// A collection's name and how many images it holds.
public struct CollectionSummary: Codable, Equatable, Sendable {
    public let name: String
    public let count: Int

    public init(name: String, count: Int) {
        self.name = name
        self.count = count
    }
}

/// One member of a collection: its place in the collection's order and its image.
public struct CollectionMember: Codable, Equatable, Sendable {
    public let ordinal: UInt64
    public let image: Digest

    public init(ordinal: UInt64, image: Digest) {
        self.ordinal = ordinal
        self.image = image
    }
}

// MARK: - Names

public enum CollectionName {
    /// Names are UTF-8 without NUL and at most this many bytes (LMDB keys are at most 511).
    public static let maximumBytes = 400

    public static func validate(_ name: String) throws {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumBytes, !bytes.contains(0) else {
            throw StoreError.invalidArgument("collection name '\(name.prefix(80))' must be 1 to \(maximumBytes) bytes of UTF-8 without NUL")
        }
    }
}

// MARK: - Big-endian integers in keys

public func bigEndianBytes(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
public func readBigEndian(_ raw: UnsafeRawBufferPointer) -> UInt64 { raw.reduce(0) { $0 << 8 | UInt64($1) } }
