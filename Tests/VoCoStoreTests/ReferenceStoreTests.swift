import Foundation
import Testing
@testable import VoCoStore
import VoCoStoreLMDB

/// A store whose codec is relative to a model reference: the reference is made from the model's
/// first N records (written self-contained at 8 bits), kept once, bound into every later record,
/// kept by gc, checked by verify; a record without its reference is refused by name.
@Suite struct ReferenceStoreTests {
    static let shape = (layers: 2, heads: 2, dim: 16)
    let model = SyntheticKV.model(layers: shape.layers, kvHeads: shape.heads, headDim: shape.dim, tokensPerImage: 1, dtype: .f16, seed: 21)

    func cache(_ n: Int) -> KVTensors {
        SyntheticKV.make(layers: Self.shape.layers, tokens: 1, kvHeads: Self.shape.heads, headDim: Self.shape.dim, firstPosition: 65,
                         seed: UInt64(n), modelSeed: 3)
    }

    /// Puts images 0..<count one at a time, each with an images entry and in collection "c".
    func fill(_ store: CacheStore, _ images: Range<Int>) throws {
        for n in images {
            let image = SyntheticKV.imageDigest(n)
            try store.put(cache(n), image: image, model: model.fingerprint)
            try store.write { txn in
                _ = try txn.putImage(image, ImageInfo(byteCount: 1, format: "synthetic", width: 1, height: 1, sourceNames: ["\(n)"]))
                _ = try txn.append([image], to: "c")
            }
        }
    }

    func header(_ store: CacheStore, _ n: Int) throws -> RecordHeader {
        let key = RecordKey(model: model.fingerprint, image: SyntheticKV.imageDigest(n), codec: .hq)
        return try #require(try store.read { try $0.record(key) }).header
    }

    @Test func theFirstRecordsMakeTheReferenceAndLaterOnesUseIt() throws {
        let store = try makeStore(codec: try CodecSettings(parsing: "hq:ref=3"), models: [model])
        try fill(store, 0..<3)
        // Until the store holds 3 records of the model, records are self-contained, 8 bits.
        #expect(try store.reference(model: model.fingerprint) == nil)
        for n in 0..<3 {
            let h = try header(store, n)
            #expect(!h.isRelative && h.keyBits == 8 && h.valueBits == 8)
        }
        try fill(store, 3..<6)
        let reference = try #require(try store.reference(model: model.fingerprint))
        for n in 3..<6 {
            let h = try header(store, n)
            #expect(h.isRelative && h.keyBits == 4 && h.valueBits == 4 && h.referenceTag == reference.tag)
        }
        // The reference is the mean of the first 3 records in key order, as decoded, kept in F16.
        let firstThree = try store.read { txn in
            try (0..<3).map { SyntheticKV.imageDigest($0) }.sorted().map { try #require(try txn.record(image: $0, model: model.fingerprint)) }
        }
        let mean = try #require(ModelReference.mean(firstThree))
        #expect(reference.kv.keys == rounded(mean.keys, to: .f16) && reference.kv.values == rounded(mean.values, to: .f16))
        let stored = try #require(try storedRecord(store, ModelReference.key(model: model.fingerprint)))
        #expect(reference.digest == Digest.sha256(stored))

        // Every record reads back as its codec decodes it, the relative ones against the reference.
        for n in 0..<6 {
            let image = SyntheticKV.imageDigest(n)
            let settings = n < 3 ? store.codec.calibration : store.codec
            let record = try RecordCoder.encode(cache(n), model: model.fingerprint, image: image, dtype: .f16, settings: settings,
                                                reference: n < 3 ? nil : reference)
            let expected = try record.withUnsafeBytes { try RecordCoder.decode($0, model: model.fingerprint, image: image, reference: reference).1 }
            let back = try #require(try store.get(image: image, model: model.fingerprint))
            #expect(back.keys.map(\.bitPattern) == expected.keys.map(\.bitPattern) && back.values == expected.values)
        }
        // A reader that has not seen it yet finds the reference in the store.
        let reader = try reopen(store)
        #expect(try reader.reference(model: model.fingerprint) == reference)
        #expect(try reader.get(image: SyntheticKV.imageDigest(4), model: model.fingerprint) != nil)

        // verify passes; stats count the reference apart; gc keeps it though no collection names it.
        #expect(try store.verify().failures.isEmpty)
        let stats = try store.stats()
        #expect(stats.records == 6 && stats.references == 1 && stats.perCodec.map(\.codec) == ["hq"])
        _ = try store.write { try $0.removeCollection("c") }
        let gc = try store.gc()
        #expect(gc.recordsRemoved == 6)
        #expect(try storedRecord(store, ModelReference.key(model: model.fingerprint)) == stored)
        #expect(try store.verify().failures.isEmpty)
    }

    @Test func aReferenceIsNeverReplaced() throws {
        let store = try makeStore(codec: try CodecSettings(parsing: "hq:ref=2"), models: [model])
        try fill(store, 0..<3)
        let reference = try #require(try store.reference(model: model.fingerprint))
        let other = try ModelReference.make(cache(99), model: model.fingerprint, dtype: .f16).record
        #expect { try store.write { try $0.put(other) } } throws: { error in
            "\(error)".contains("already has another reference") && "\(error)".contains(reference.digest.hex)
        }
        // The same bytes again (a copy of the store) are accepted and change nothing.
        let stored = try #require(try storedRecord(store, ModelReference.key(model: model.fingerprint)))
        try store.write { try $0.put(EncodedRecord(key: ModelReference.key(model: model.fingerprint), bytes: stored)) }
        #expect(try reopen(store).reference(model: model.fingerprint) == reference)
    }

    /// Without its reference, or with another one in its place, a relative record is refused by
    /// name on read and reported by verify; the reference's own damage is named too.
    @Test func aRecordWithoutItsReferenceIsRefusedByName() throws {
        let store = try makeStore(codec: try CodecSettings(parsing: "hq:ref=2"), models: [model])
        try fill(store, 0..<4)
        let key = ModelReference.key(model: model.fingerprint)
        let stored = try #require(try storedRecord(store, key))
        let image = SyntheticKV.imageDigest(3)

        try store.write { _ = try $0.transaction.deleteRecord(key) }
        let reader = try reopen(store)  // no reference cached
        #expect { _ = try reader.get(image: image, model: model.fingerprint) } throws: { error in
            "\(error)".contains("missing") && "\(error)".contains(key.description) && "\(error)".contains(image.hex)
        }
        let failures = try reader.verify().failures
        #expect(failures.count == 2 && failures.allSatisfy { $0.reason.contains(key.description) })

        // Another reference in its place: refused, naming the one the record was written against.
        let other = try ModelReference.make(cache(99), model: model.fingerprint, dtype: .f16)
        try store.write { try $0.transaction.putRecord(key, other.record.bytes) }
        #expect { _ = try reopen(store).get(image: image, model: model.fingerprint) } throws: { error in
            "\(error)".contains("written against reference") && "\(error)".contains(other.reference.digest.hex)
        }

        // A damaged reference: its records are refused, naming the reference record.
        var damaged = stored
        damaged[damaged.count / 2] ^= 0x10
        try store.write { try $0.transaction.putRecord(key, damaged) }
        let fresh = try reopen(store)
        #expect { _ = try fresh.get(image: image, model: model.fingerprint) } throws: { "\($0)".contains("reference (record \(key))") }
        #expect(try fresh.verify().failures.contains { $0.key == key.description })
        // Self-contained records of the model still read.
        #expect(try fresh.get(image: SyntheticKV.imageDigest(0), model: model.fingerprint) != nil)
    }

    /// Salvage copies the reference with the records that need it: the new store verifies.
    @Test func salvageKeepsTheReference() throws {
        let store = try makeStore(codec: try CodecSettings(parsing: "hq:ref=2"), models: [model])
        try fill(store, 0..<4)
        let destination = try LMDBStore.open(path: temporaryDirectory("salvaged"), options: StoreOptions(create: true, codec: store.codec))
        let report = try store.salvage(into: destination)
        #expect(report.lost.isEmpty && report.destinationVerifies, "\(report.lost)")
        #expect(try destination.reference(model: model.fingerprint) == store.reference(model: model.fingerprint))
        #expect(try destination.get(image: SyntheticKV.imageDigest(3), model: model.fingerprint) == store.get(image: SyntheticKV.imageDigest(3), model: model.fingerprint))
    }

    /// A cache with another number of rows than the reference cannot be stored relative to it.
    @Test func aCacheOfAnotherShapeIsRefused() throws {
        let store = try makeStore(codec: try CodecSettings(parsing: "hq:ref=1"), models: [model])
        try fill(store, 0..<2)
        let wide = SyntheticKV.make(layers: 2, tokens: 3, kvHeads: 2, headDim: 16, seed: 5)
        #expect { try store.put(wide, image: SyntheticKV.imageDigest(9), model: model.fingerprint) } throws: { error in
            "\(error)".contains("tokens 3") && "\(error)".contains("reference")
        }
    }

    /// Stores of other codecs know nothing of references: nothing is made, records as before.
    @Test func aSelfContainedStoreMakesNoReference() throws {
        let store = try makeStore(codec: CodecSettings(codec: .hq), models: [model])
        try fill(store, 0..<20)
        #expect(try store.reference(model: model.fingerprint) == nil)
        #expect(try !header(store, 19).isRelative && header(store, 19).keyBits == 4)
        #expect(try store.stats().references == 0)
    }

    /// The store as a new reader process sees it: no reference remembered.
    private func reopen(_ store: CacheStore) throws -> CacheStore {
        store.references[model.fingerprint] = nil
        return store
    }
}
