import Foundation
import VoCoImage
import VoCoModel
import VoCoStore

// MARK: - Image files -> records in a store, batch by batch

/// Ingests image files into a store with one model: each file is hashed and looked up before
/// any compute (an image the store already holds for this model is only added to the
/// collection), new images are decoded and preprocessed on other threads while the compression
/// pass runs, and each batch is committed in one write transaction with its records, `images`
/// entries and collection memberships, so that a crash never leaves one without the others.
/// Memberships are appended in the order of the sources, skipping images already in the
/// collection: a run interrupted and started again over the same sources ends with the same
/// collection order as an uninterrupted run.
///
/// Each image is compressed on its own (one image per compression pass), never batched with
/// others: a GEMM's rounding depends on how many rows it multiplies, so a record then does not
/// depend on which images happened to share its batch (the same bits as `voco debug compress`
/// on that image alone, whether or not the run was interrupted).
public final class Ingestor: @unchecked Sendable {
    public let store: CacheStore
    public let model: AnsweringModel
    public let descriptor: ModelDescriptor
    public let options: IngestOptions
    private let preprocessor: ImagePreprocessor
    private let imageSize: Int

    /// Fingerprints the model (weights' hashes cached in the store), registers its descriptor.
    public init(store: CacheStore, model: AnsweringModel, options: IngestOptions = IngestOptions()) throws {
        if let problem = options.problem() { throw PipelineError.invalidIngestOptions(reason: problem) }
        guard let preprocessor = model.preprocessor, let vision = model.engine.vision else {
            throw PipelineError.textOnlyModel(path: model.directory)
        }
        let fingerprint = try ModelFingerprint.compute(directory: model.directory, store: store)
        descriptor = try model.descriptor(fingerprint: fingerprint)
        try store.register(descriptor)
        self.store = store
        self.model = model
        self.options = options
        self.preprocessor = preprocessor
        imageSize = vision.config.imageSize
    }

    public var fingerprint: Digest { descriptor.fingerprint }

    /// One committed batch: its files' outcomes in source order, and how many images joined
    /// their collections.
    public struct Batch: Sendable {
        public var results: [IngestResult]
        public var added: Int
        /// Seconds from the batch's first file to its commit.
        public var seconds: Double
        /// The write transaction's seconds (it ran while the next batch was compressed).
        public var commitSeconds: Double
        /// Seconds the compression pass waited, in this batch, for files to be read and decoded
        /// or for the previous commit (0 when the earlier stages keep ahead).
        public var waitSeconds: Double = 0
    }

    /// Runs `sources` through the pipeline in order, calling `onBatch` after each commit.
    /// Returns false when `shouldStop` ended the run early (checked between batches; what was
    /// committed stays). Store errors stop the run and are thrown; file errors are outcomes.
    /// A batch is committed on a thread of its own while the next one is compressed; commits
    /// happen one at a time, in order, and `onBatch` runs on the calling thread.
    @discardableResult
    public func run(_ sources: [IngestSource], shouldStop: () -> Bool = { false }, onBatch: (Batch) throws -> Void) throws -> Bool {
        let prefetch = OrderedPrefetch(count: sources.count, threads: options.prepareThreads, window: options.readAhead) { [self] i in
            prepare(sources[i])
        }
        defer { prefetch.cancel() }
        var committing: BackgroundCommit?
        defer { committing?.wait() }  // never return with a transaction still running
        var compressedThisRun = Set<Digest>()
        var index = 0, waitedBefore = 0.0
        var finished = true
        while index < sources.count {
            if shouldStop() {
                finished = false
                break
            }
            let start = Date()
            var pending = PendingBatch()
            for source in sources[index..<min(sources.count, index + options.batchSize)] {
                guard let prepared = prefetch.next() else { break }
                try pending.add(source, prepared, compress: { digest, pixels in
                    guard !compressedThisRun.contains(digest) else { return nil }
                    let record = try compress(pixels, digest: digest)
                    compressedThisRun.insert(digest)
                    return record
                })
            }
            index += pending.results.count
            let waitStart = DispatchTime.now().uptimeNanoseconds
            let previous = try committing?.result()
            let waited = prefetch.waitedSeconds - waitedBefore + Double(DispatchTime.now().uptimeNanoseconds - waitStart) / 1e9
            waitedBefore = prefetch.waitedSeconds
            committing = BackgroundCommit(pending, store: store, started: start, waitSeconds: waited)
            if let previous { try onBatch(previous) }
        }
        if let last = committing {
            committing = nil
            try onBatch(try last.result())
        }
        return finished
    }

    // MARK: Prepare (other threads): read, hash, look up, decode, preprocess

    /// A file made ready for the compression pass, or why it cannot be.
    enum Prepared {
        /// `pixels` is nil when no compression is needed (the store has the record).
        case image(Digest, ImageInfo, Lookup, pixels: [Float]?)
        case skipped(String)
        case failed(String)
        /// The store could not be read: the run stops.
        case storeError(Error)
    }

    /// What the store already holds for an image.
    struct Lookup {
        var hasRecord: Bool
        var info: ImageInfo?
        var isMember: Bool
    }

    func prepare(_ source: IngestSource) -> Prepared {
        let bytes: [UInt8], digest: Digest
        do {
            let read = try ImageFile.read(path: source.path, limits: options.limits)
            guard let d = Digest(bytes: read.sha256) else { return .failed("no SHA-256 digest") }
            (bytes, digest) = (read.bytes, d)
        } catch {
            return .failed(Self.describe(error, path: source.path))
        }
        guard !bytes.isEmpty else { return .skipped("empty file (0 bytes)") }
        guard bytes.withUnsafeBytes({ ImageFormat.detect($0) }) != nil else {
            let head = bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            return .skipped("not a JPEG or PNG by content (starts with \(head))")
        }
        let lookup: Lookup
        do {
            lookup = try store.read { r in
                Lookup(hasRecord: try r.hasRecord(image: digest, model: fingerprint), info: try r.image(digest),
                       isMember: try r.ordinal(of: digest, in: source.collection) != nil)
            }
        } catch {
            return .storeError(error)
        }
        if lookup.hasRecord, let info = lookup.info { return .image(digest, info, lookup, pixels: nil) }
        do {
            let decoded = try ImageDecoder.decode(bytes, source: source.path, limits: options.limits)
            let info = ImageInfo(byteCount: bytes.count, format: decoded.format.rawValue.lowercased(),
                                 width: decoded.image.width, height: decoded.image.height, sourceNames: [source.name])
            guard !lookup.hasRecord else { return .image(digest, info, lookup, pixels: nil) }
            let tensor = try preprocessor.tensor(decoded.image, source: source.path)
            guard tensor.height == imageSize, tensor.width == imageSize else {
                let error = PipelineError.preprocessorMismatch(path: model.directory, image: source.path,
                                                               produced: [tensor.height, tensor.width], towerExpects: imageSize)
                return .failed(Self.describe(error, path: source.path))
            }
            return .image(digest, info, lookup, pixels: tensor.values)
        } catch {
            return .failed(Self.describe(error, path: source.path))
        }
    }

    // MARK: Compress (this thread)

    /// One image through the compression pass, encoded with the store's codec.
    func compress(_ pixels: [Float], digest: Digest) throws -> EncodedRecord {
        let result = try model.engine.compress(pixels: pixels, images: 1)
        guard let cache = result.caches.first else { throw PipelineError.cacheShape(reason: "the compression pass returned no cache") }
        return try store.encode(try model.storeTensors(cache), image: digest, model: descriptor)
    }

    // MARK: Each stage alone (for benchmarks)

    /// The first stage alone, as `run` runs it (read, hash, look up, decode and preprocess on
    /// the prepare threads, handed over in order), the results dropped: how fast it can feed
    /// the compression pass. Returns how many files became pixels.
    public func prepareOnly(_ sources: [IngestSource]) -> Int {
        let prefetch = OrderedPrefetch(count: sources.count, threads: options.prepareThreads, window: options.readAhead) { [self] i in
            prepare(sources[i])
        }
        defer { prefetch.cancel() }
        var images = 0
        while let prepared = prefetch.next() {
            if case .image(_, _, _, pixels: .some) = prepared { images += 1 }
        }
        return images
    }

    /// The second stage alone on one image's preprocessed pixels ([3][size][size]): the
    /// compression pass and the record's encoding. Returns the record's size.
    public func compressOnly(_ pixels: [Float], digest: Digest) throws -> Int {
        try compress(pixels, digest: digest).bytes.count
    }

    /// An error's text without a leading "PATH: " (the outcome carries the path).
    static func describe(_ error: Error, path: String) -> String {
        let text = String(describing: error)
        return text.hasPrefix(path + ": ") ? String(text.dropFirst(path.count + 2)) : text
    }
}
