import Foundation
import VoCoImage
import VoCoStore

// MARK: - What goes in

/// One file to ingest: where to read it, the name the store records for it, and the
/// collection it joins.
public struct IngestSource: Sendable, Equatable {
    public var path: String
    /// Recorded in the image's `sourceNames` (a path, or an uploaded file's name).
    public var name: String
    public var collection: String

    public init(path: String, name: String? = nil, collection: String) {
        self.path = path
        self.name = name ?? path
        self.collection = collection
    }
}

/// How an ingest runs.
public struct IngestOptions: Sendable {
    /// Files per write transaction (and per progress report).
    public var batchSize: Int
    /// Threads that read, hash, decode and preprocess ahead of the compression pass.
    public var prepareThreads: Int
    /// How many files may be read ahead of the one being compressed (bounds memory: each
    /// holds one preprocessed image, [3][size][size] floats).
    public var readAhead: Int
    public var limits: ImageLimits

    public static let maximumBatchSize = 4096

    public init(batchSize: Int = 16, prepareThreads: Int? = nil, readAhead: Int? = nil, limits: ImageLimits = .default) {
        self.batchSize = batchSize
        self.prepareThreads = prepareThreads ?? Self.defaultPrepareThreads
        self.readAhead = readAhead ?? max(2 * min(max(batchSize, 1), Self.maximumBatchSize), 8)
        self.limits = limits
    }

    /// Half the cores (the compression pass uses the rest), at least 1, at most 8.
    public static var defaultPrepareThreads: Int { min(8, max(1, ProcessInfo.processInfo.activeProcessorCount / 2)) }

    /// Why these options cannot run, or nil.
    public func problem() -> String? {
        guard (1...Self.maximumBatchSize).contains(batchSize) else { return "the batch size must be 1 to \(Self.maximumBatchSize) (got \(batchSize))" }
        guard (1...64).contains(prepareThreads) else { return "prepare threads must be 1 to 64 (got \(prepareThreads))" }
        guard (1...65536).contains(readAhead) else { return "read-ahead must be 1 to 65536 files (got \(readAhead))" }
        return nil
    }
}

// MARK: - What comes out, per file

/// What happened to one file.
public enum IngestOutcome: Sendable, Equatable {
    /// Compressed now; `storedBytes` is the record's size in the store.
    case compressed(Digest, storedBytes: Int)
    /// The store already had this image's record for the model (or this run compressed it
    /// earlier): only its collection membership and source name were added.
    case cached(Digest)
    /// Not a JPEG or PNG by content: not an image, so not an error.
    case skipped(reason: String)
    /// An image that could not be ingested (unreadable, truncated, corrupt, too large).
    case failed(reason: String)

    public var digest: Digest? {
        switch self {
        case let .compressed(d, _), let .cached(d): return d
        case .skipped, .failed: return nil
        }
    }
}

/// A file's outcome, with the file.
public struct IngestResult: Sendable, Equatable {
    public var source: IngestSource
    public var outcome: IngestOutcome
}

// MARK: - Progress and summary

/// Counts so far, reported after every committed batch.
public struct IngestProgress: Codable, Sendable, Equatable {
    /// Files found (after the walk).
    public var total = 0
    /// Files finished (any outcome).
    public var done = 0
    public var compressed = 0
    public var alreadyCached = 0
    public var skipped = 0
    public var failed = 0
    /// Images that joined the collection in this run.
    public var added = 0
    /// Bytes of the records written in this run.
    public var bytesStored = 0
    public var seconds = 0.0

    public init(total: Int = 0) { self.total = total }

    /// Images (compressed or cached) per second so far.
    public var imagesPerSecond: Double { seconds > 0 ? Double(compressed + alreadyCached) / seconds : 0 }
    /// Seconds left at the current rate of files per second; nil before there is a rate.
    public var secondsLeft: Double? {
        guard done > 0, seconds > 0 else { return nil }
        return Double(total - done) / (Double(done) / seconds)
    }

    mutating func count(_ outcome: IngestOutcome) {
        done += 1
        switch outcome {
        case let .compressed(_, bytes): compressed += 1; bytesStored += bytes
        case .cached: alreadyCached += 1
        case .skipped: skipped += 1
        case .failed: failed += 1
        }
    }
}

/// A file (or folder) with the reason it was skipped or failed.
public struct IngestIssue: Codable, Sendable, Equatable {
    public var path: String
    public var reason: String
}

/// What a bulk ingest did.
public struct IngestSummary: Codable, Sendable, Equatable {
    public var collection: String
    public var store: String
    public var model: Digest
    public var counts: IngestProgress
    /// Whether the run stopped early (interrupted); the counts cover what was committed.
    public var stopped: Bool
    public var skippedFiles: [IngestIssue]
    public var failures: [IngestIssue]
}
