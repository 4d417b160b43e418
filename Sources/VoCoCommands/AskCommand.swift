import ArgumentParser
import Foundation
import VoCoImage
import VoCoModel
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB

/// `voco ask --image a.png --image b.jpg "Which image has a red circle?"`: compresses the images
/// and answers the question from their VoCo caches. With a store (`--store`, `--collection`,
/// `--digest`), answers from stored caches instead: over a collection (planned: all images when
/// they fit, else the most relevant), over chosen digests, or over `--image` files whose
/// records the store holds (compressing only the others, and storing them only with `--save`).
struct AskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask",
        abstract: "Answer a question about images (numbered image 1, image 2, ... in the order given), or about a stored collection."
    )

    @Option(help: "Model directory (default: $VOCO_MODEL, else the bundled Models/voco-shapes).")
    var model: String?

    @Option(name: .customLong("image"), help: "An image file (JPEG or PNG); repeat for several.")
    var images: [String] = []

    @Option(help: "Ask over this stored collection (its images' stored caches; nothing is compressed).")
    var collection: String?

    @Option(name: .customLong("digest"), help: "An image's SHA-256 (hex) in the store: narrows --collection to these images, or, without it, the images asked about; repeat for several.")
    var digests: [String] = []

    @Option(help: ArgumentHelp(
        "The store: a directory (LMDB) or redis://host:port[,host:port...][/name] (default with --collection or --digest: $VOCO_STORE, else ~/.local/share/voco/store). With --image, the store is read only when given.",
        valueName: "dir-or-url"))
    var store: String?

    @Flag(help: "With --image and a store: keep the caches compressed now in the store (with --collection, also add the images to it).")
    var save = false

    @Option(help: "Bytes of decoded caches kept in memory between the questions of one run (the query service's LRU).")
    var cacheBytes = 256 << 20

    @OptionGroup var sampling: SamplingOptions

    @OptionGroup var compute: BackendOptions

    @Flag(help: "Print a JSON object (answer, images with digests, references, timings) instead of the answer text.")
    var json = false

    @Flag(help: "Answer even with more images than the model was trained to read at once (voco.max_images); warns instead of refusing.")
    var allowOverMaxImages = false

    @Argument(help: "The question.")
    var question: String

    func validate() throws {
        if !images.isEmpty && !digests.isEmpty { throw ValidationError("give images either as --image files or as --digest, not both") }
        for d in digests where Digest(hex: d) == nil { throw ValidationError("--digest \(d): not a SHA-256 digest (64 hex digits)") }
        if save && store == nil && collection == nil { throw ValidationError("--save needs a store: pass --store (or --collection)") }
        if save && images.isEmpty { throw ValidationError("--save stores what --image files compress; give --image") }
        guard cacheBytes >= 0 else { throw ValidationError("--cache-bytes must be >= 0 (got \(cacheBytes))") }
    }

    func run() throws {
        let directory = model ?? DefaultModel.path()
        let answering = try AnsweringModel(directory: directory, options: compute.loadOptions)
        compute.report(answering.engine)
        if images.isEmpty && (collection != nil || !digests.isEmpty) {
            return try askStored(answering, directory: directory)
        }
        let options = sampling.generation
        // Before any image is read: the trained maximum, then whether the caches, the prompt and
        // the answer fit the context (rows per image are known from the settings).
        do {
            if let warning = try answering.checkImageCount(images.count, allowOverMaximum: allowOverMaxImages) {
                FileHandle.standardError.write(Data("warning: \(warning); answering anyway (--allow-over-max-images)\n".utf8))
            }
        } catch let error as PipelineError {
            throw CommandFailure("\(error); ask about fewer images, or pass --allow-over-max-images to answer anyway")
        }
        try answering.checkQuestion(question, images: images.count, options: options)
        let compressed: [AskedImage]
        if store != nil || collection != nil {
            compressed = try cachedOrCompressed(answering)
        } else {
            compressed = images.isEmpty ? [] : try answering.compress(imagePaths: images).map {
                AskedImage(path: $0.source, digest: $0.digest, width: $0.width, height: $0.height, format: $0.format.rawValue,
                           cache: $0.cache, fromStore: false)
            }
        }
        if json {
            let answer = try answering.answer(question, caches: compressed.map(\.cache), options: options)
            var object: [String: Any] = [
                "question": question,
                "answer": answer.text,
                "tokens": answer.tokens,
                "model": directory,
                "images": compressed.enumerated().map { i, image in
                    var entry: [String: Any] = ["number": i + 1, "path": image.path, "sha256": image.digest.map { String(format: "%02x", $0) }.joined(),
                                                "cacheRows": image.cache.rows]
                    if let w = image.width, let h = image.height, let f = image.format {
                        entry["width"] = w
                        entry["height"] = h
                        entry["format"] = f
                    }
                    if store != nil || collection != nil { entry["fromStore"] = image.fromStore }
                    return entry
                },
            ]
            if store != nil || collection != nil {
                object["references"] = QueryService.references(in: answer.text, used: compressed.enumerated().map { i, image in
                    UsedImage(number: i + 1, digest: image.digest.map { String(format: "%02x", $0) }.joined(), name: image.path)
                }).map(Self.reference)
            }
            printJSON(object)
        } else {
            var printed = ""
            _ = try answering.answer(question, caches: compressed.map(\.cache), options: options) { chunk in
                // Streamed as it is generated; leading whitespace of the answer is not printed.
                let text = printed.isEmpty ? String(chunk.drop { $0.isWhitespace }) : chunk
                printed += text
                FileHandle.standardOutput.write(Data(text.utf8))
            }
            print("")
        }
    }

    // MARK: - From the store

    private func openStore(create: Bool) throws -> CacheStore {
        try StoreLocation.open(store ?? LMDBStore.defaultPath, options: StoreOptions(readOnly: !create, create: create))
    }

    /// --collection / --digest: the query service over stored caches.
    private func askStored(_ answering: AnsweringModel, directory: String) throws {
        let cacheStore = try openStore(create: false)
        let service = try QueryService(store: cacheStore, model: answering, cacheBytes: cacheBytes)
        for warning in service.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        let request = QueryRequest(collection: collection, images: digests.compactMap { Digest(hex: $0) }, question: question,
                                   generation: sampling.generation)
        if json {
            let answer = try service.ask(request)
            printJSON(Self.object(answer, question: question, directory: directory))
        } else {
            var printed = ""
            _ = try service.ask(request) { chunk in
                let text = printed.isEmpty ? String(chunk.drop { $0.isWhitespace }) : chunk
                printed += text
                FileHandle.standardOutput.write(Data(text.utf8))
            }
            print("")
        }
    }

    struct AskedImage {
        let path: String
        let digest: [UInt8]
        let width: Int?, height: Int?
        let format: String?
        let cache: VoCoCache
        let fromStore: Bool
    }

    /// --image with a store: each image's stored record of this model when there is one, else
    /// compressed now (and stored with --save or --collection).
    private func cachedOrCompressed(_ answering: AnsweringModel) throws -> [AskedImage] {
        let keep = save || collection != nil
        let cacheStore = try openStore(create: keep)
        let fingerprint = try ModelFingerprint.compute(directory: answering.directory, store: cacheStore)
        var files: [(path: String, digest: Digest)] = []
        for path in images {
            let read = try ImageFile.read(path: path, limits: .default)
            guard let digest = Digest(bytes: read.sha256) else { throw CommandFailure("\(path): no SHA-256 digest") }
            files.append((path, digest))
        }
        var stored: [Digest: VoCoCache] = [:]
        try cacheStore.read { r in
            for (_, digest) in files where stored[digest] == nil {
                if let kv = try r.record(image: digest, model: fingerprint.fingerprint) { stored[digest] = try answering.engineCache(kv) }
            }
        }
        let missing = files.filter { stored[$0.digest] == nil }
        var fresh: [Digest: CompressedImage] = [:]
        if !missing.isEmpty {
            for image in try answering.compress(imagePaths: missing.map(\.path)) {
                if let d = Digest(bytes: image.digest) { fresh[d] = image }
            }
        }
        if keep {
            let descriptor = try answering.register(in: cacheStore, fingerprint: fingerprint)
            let records = try fresh.map { digest, image in
                try cacheStore.encode(try answering.storeTensors(image.cache), image: digest, model: descriptor)
            }
            try cacheStore.write { w in
                for record in records { try w.put(record) }
                for (path, digest) in files {
                    if let image = fresh[digest] {
                        let bytes = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
                        try w.putImage(digest, ImageInfo(byteCount: bytes, format: image.format.rawValue.lowercased(), width: image.width,
                                                         height: image.height, sourceNames: [(path as NSString).lastPathComponent]))
                    }
                }
                if let collection {
                    try w.append(files.map(\.digest), to: collection)
                }
            }
        }
        return files.map { path, digest in
            if let cache = stored[digest] {
                return AskedImage(path: path, digest: digest.bytes, width: nil, height: nil, format: nil, cache: cache, fromStore: true)
            }
            let image = fresh[digest]!
            return AskedImage(path: path, digest: digest.bytes, width: image.width, height: image.height, format: image.format.rawValue,
                              cache: image.cache, fromStore: false)
        }
    }

    // MARK: - JSON

    static func reference(_ r: ImageReference) -> [String: Any] {
        var entry: [String: Any] = ["text": r.text, "number": r.number]
        if let d = r.digest { entry["digest"] = d }
        if let n = r.name { entry["name"] = n }
        return entry
    }

    static func object(_ answer: QueryAnswer, question: String, directory: String) -> [String: Any] {
        [
            "question": question,
            "answer": answer.answer,
            "tokens": answer.tokens,
            "model": directory,
            "fingerprint": answer.model.hex,
            "candidates": answer.candidates,
            "ranked": answer.ranked,
            "used": answer.used.map { u -> [String: Any] in
                var entry: [String: Any] = ["number": u.number, "digest": u.digest]
                if let o = u.ordinal { entry["ordinal"] = o }
                if let n = u.name { entry["name"] = n }
                if let r = u.relevance { entry["relevance"] = r }
                return entry
            },
            "references": answer.references.map(reference),
            "timings": ["load": answer.timings.load, "plan": answer.timings.plan, "prefill": answer.timings.prefill,
                        "decode": answer.timings.decode],
        ]
    }

    private func printJSON(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) else { return }
        print(String(decoding: data, as: UTF8.self))
    }
}
