import Foundation
import Testing
import VoCoModel
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB

/// The bundled model registered in a store whose codec is relative to a model reference: the
/// store makes the reference from the model's first records and stores the later ones relative to
/// it, with a much smaller key error than self-contained hq at the same bits.
@Suite struct ModelRegistrationTests {
    @Test func aReferenceStoreKeepsTheBundledModelsCachesCloser() throws {
        let model = try bundledModel.get()
        let paths = try FileManager.default.contentsOfDirectory(atPath: (repositoryRoot as NSString).appendingPathComponent("Samples"))
            .filter { $0.hasSuffix(".png") || $0.hasSuffix(".jpg") }.sorted().prefix(16)
            .map { (repositoryRoot as NSString).appendingPathComponent("Samples/\($0)") }
        let compressed = try model.compress(imagePaths: Array(paths))
        let fingerprint = try ModelFingerprint.compute(directory: model.directory)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("voco-registration-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try LMDBStore.open(path: directory, options: StoreOptions(create: true, codec: try CodecSettings(parsing: "hq:ref=4")))
        let descriptor = try model.register(in: store, fingerprint: fingerprint)
        #expect(descriptor == (try model.descriptor(fingerprint: fingerprint)).with(registeredAt: descriptor.registeredAt))
        #expect(try store.read { try $0.model(fingerprint.fingerprint) } == descriptor)
        #expect(try model.register(in: store, fingerprint: fingerprint).fingerprint == descriptor.fingerprint)  // again: no change

        for image in compressed {
            try store.put(try model.storeTensors(image.cache), image: Digest(bytes: image.digest)!, model: descriptor.fingerprint)
        }
        let reference = try #require(try store.reference(model: descriptor.fingerprint))
        #expect(reference.kv.tokens == model.settings.numTokens && reference.kv.layers == descriptor.layers)

        // Records after the first 4 are relative; their keys come back much closer than
        // self-contained hq K4/V4 brings them.
        var relative = 0
        var errors = (relative: 0.0, plain: 0.0, norm: 0.0)
        for image in compressed {
            let digest = Digest(bytes: image.digest)!
            let key = RecordKey(model: descriptor.fingerprint, image: digest, codec: .hq)
            let (header, kv, _) = try #require(try store.read { try $0.record(key) })
            guard header.isRelative else { continue }
            relative += 1
            let plain = try RecordCoder.encode(try model.storeTensors(image.cache), model: descriptor.fingerprint, image: digest, dtype: .f16,
                                               settings: CodecSettings(codec: .hq))
            let back = try plain.withUnsafeBytes { try RecordCoder.decode($0, model: descriptor.fingerprint, image: digest).1 }
            for i in kv.keys.indices {
                let x = Double(image.cache.keys[i])
                errors.relative += pow(Double(kv.keys[i]) - x, 2)
                errors.plain += pow(Double(back.keys[i]) - x, 2)
                errors.norm += x * x
            }
        }
        #expect(relative == compressed.count - 4)
        #expect(errors.relative * 2 < errors.plain, "key errors: relative \(errors.relative), plain \(errors.plain) (sum of squares \(errors.norm))")
    }
}

private extension ModelDescriptor {
    func with(registeredAt time: String) -> ModelDescriptor {
        var copy = self
        copy.registeredAt = time
        return copy
    }
}
