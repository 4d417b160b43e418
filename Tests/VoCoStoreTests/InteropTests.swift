import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreLMDB

/// Tools/interop/read_records.py, written from Schemas/ alone, reads what Swift wrote.
/// The interpreter is $VOCO_PYTHON (Tools/test makes one), else python3 on the PATH; it needs
/// lmdb, zstandard and numpy. Without such an interpreter the test is skipped and says so.
@Suite struct InteropTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The interpreter to use, or nil (with the reason) when none has the modules.
    static func python() throws -> (path: String?, reason: String) {
        let check = ["-c", "import lmdb, zstandard, numpy"]
        if let chosen = ProcessInfo.processInfo.environment["VOCO_PYTHON"], !chosen.isEmpty {
            let result = try runProcess(chosen, check)
            // An interpreter chosen on purpose must work: that is a failure, not a skip.
            #expect(result.status == 0, "VOCO_PYTHON=\(chosen) cannot import lmdb, zstandard, numpy: \(result.error)")
            return (result.status == 0 ? chosen : nil, "VOCO_PYTHON lacks the modules")
        }
        guard let result = try? runProcess("/usr/bin/env", ["python3"] + check) else { return (nil, "no python3") }
        return result.status == 0 ? ("/usr/bin/env", "") : (nil, "python3 cannot import lmdb, zstandard, numpy (Tools/test makes .venv-interop with them)")
    }

    /// Every codec, in both record formats where it has both, hq at several bit widths, and hq
    /// relative to the model's reference (the store makes it from the first records).
    static let codecs = ["shuffle-zstd", "zstd", "int8", "q4:group=6", "shuffle-zstd:compact", "zstd:compact", "int8:compact",
                         "q4:group=6,compact", "hq", "hq:k=3,v=5", "hq:k=8,v=2", "hq:k=7,v=6", "hq:ref=2", "hq:k=3,v=5,ref=1"]

    @Test func thePythonReaderReproducesEveryCodecsTensors() throws {
        let (interpreter, reason) = try Self.python()
        guard let interpreter else {
            print("interop check skipped: \(reason)")
            try Test.cancel("interop check skipped: \(reason)")
        }
        let script = Self.repository.appendingPathComponent("Tools/interop/read_records.py").path
        func python(_ arguments: [String]) throws -> ProcessResult {
            try runProcess(interpreter, (interpreter == "/usr/bin/env" ? ["python3"] : []) + [script] + arguments)
        }
        // 2 heads of 7: odd channel counts (q4's last nibble and short last group; no hq rotation);
        // 3 heads of 12: hq rotates in blocks of 4; 1 head of 32: one block of 32.
        let shapes = [(heads: 2, dim: 7), (heads: 3, dim: 12), (heads: 1, dim: 32)]
        let models = ValueType.allCases.flatMap { dtype in
            shapes.map { SyntheticKV.model(layers: 3, kvHeads: $0.heads, headDim: $0.dim, tokensPerImage: 2, dtype: dtype, seed: UInt64(dtype.rawValue) * 100 + UInt64($0.dim)) }
        }
        for spec in Self.codecs {
            let settings = try CodecSettings(parsing: spec)
            let store = try makeStore(codec: settings, models: models)
            var written: [(ModelDescriptor, Digest, KVTensors, Int)] = []
            for model in models {
                // A relative store's records all have the model's rows per image (2): the first
                // ones self-contained (they make the reference), the others relative to it.
                let tokenCounts: [Int] = settings.relative ? [2, 2, 2, 2] : [1, 2, 5]
                for (n, tokens) in tokenCounts.enumerated() {
                    let kv = SyntheticKV.make(layers: 3, tokens: tokens, kvHeads: model.kvHeads, headDim: model.headDim, firstPosition: 10 + 200 * n,
                                              seed: UInt64(n), modelSeed: 3)
                    let image = SyntheticKV.imageDigest(n)
                    try store.put(kv, image: image, model: model.fingerprint)
                    written.append((model, image, kv, n))
                }
            }
            let dump = temporaryDirectory("dump")
            let result = try python([store.path, "--dump", dump])
            #expect(result.status == 0, "\(spec): \(result.output) \(result.error)")
            for (model, image, original, n) in written {
                let base = (dump as NSString).appendingPathComponent("\(model.fingerprint.hex)-\(image.hex)-\(settings.codec.name)")
                let key = RecordKey(model: model.fingerprint, image: image, codec: settings.codec)
                let (header, swift, _) = try #require(try store.read { try $0.record(key) })  // verified, against the reference where relative
                #expect(header.format == (settings.compactHeader ? 2 : 1))
                #expect(header.isRelative == (settings.relative && n >= settings.referenceImages))
                let keys = try readFloats(base + ".k.f32"), values = try readFloats(base + ".v.f32")
                let what = "\(spec) \(model.dtype) \(model.kvHeads)x\(model.headDim) tokens \(original.tokens)"
                // The same tensors, bit for bit, as Swift decodes them...
                #expect(keys.map(\.bitPattern) == swift.keys.map(\.bitPattern), "\(what): keys")
                #expect(values.map(\.bitPattern) == swift.values.map(\.bitPattern), "\(what): values")
                // ...which for the lossless codecs are the stored values exactly.
                if settings.codec.isLossless {
                    let dtype = try model.valueType()
                    #expect(keys.map(\.bitPattern) == rounded(original.keys, to: dtype).map(\.bitPattern), "\(what): keys")
                    #expect(values.map(\.bitPattern) == rounded(original.values, to: dtype).map(\.bitPattern), "\(what): values")
                }
                let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + ".json"))) as? [String: Any])
                #expect(json["firstPosition"] as? Int == original.firstPosition && json["tokens"] as? Int == original.tokens)
                #expect(json["keysBeforeRoPE"] as? Bool == true && json["dtype"] as? String == model.dtype)
                #expect(json["headerLength"] as? Int == header.headerLength && json["bodyLength"] as? Int == header.bodyLength)
                #expect(json["payload"] as? String == (header.payloadIsZstd ? "zstd" : "raw"))
                #expect(json["keyBits"] as? Int == header.keyBits && json["valueBits"] as? Int == header.valueBits)
                #expect(json["reference"] as? String == header.referenceTag.map(ModelReference.hex))
                #expect(json["int8RowScales"] as? Bool == header.int8RowScales)
            }

            // A corrupted record is refused by the Python reader too...
            let key = RecordKey(model: models[0].fingerprint, image: SyntheticKV.imageDigest(0), codec: settings.codec)
            var bytes = try #require(try storedRecord(store, key))
            let headerLength = try bytes.withUnsafeBytes { try RecordHeader.decode($0).headerLength }
            bytes[headerLength + 1] ^= 0x40
            try store.write { try $0.transaction.putRecord(key, bytes) }
            let refused = try python([store.path])
            #expect(refused.status == 1 && refused.output.contains("checksum mismatch"), "\(spec): \(refused.output)")
            // ...and so is an intact format 2 record under another image's key: its checksum binds the key.
            if settings.compactHeader {
                let other = RecordKey(model: models[0].fingerprint, image: SyntheticKV.imageDigest(1), codec: settings.codec)
                let moved = try #require(try storedRecord(store, other))
                try store.write { try $0.transaction.putRecord(key, moved) }
                let misplaced = try python([store.path])
                #expect(misplaced.status == 1 && misplaced.output.contains("checksum mismatch"), "\(spec): \(misplaced.output)")
                #expect(throws: RecordProblem.self) {
                    _ = try moved.withUnsafeBytes { try RecordCoder.decode($0, model: key.model, image: key.image) }
                }
            }
        }
    }

    /// int8's two layouts (scales per key channel and value token; a bfloat16 scale per row when
    /// that would be larger than F16) over odd shapes, one channel included (groups of 2 values
    /// that cross from one row to the next), k = 1...8, with zeros, subnormals and huge values:
    /// the Python reader gets Swift's tensors bit for bit in both record formats.
    @Test func thePythonReaderDecodesBothInt8Layouts() throws {
        let (interpreter, reason) = try Self.python()
        guard let interpreter else { try Test.cancel("interop check skipped: \(reason)") }
        let script = Self.repository.appendingPathComponent("Tools/interop/read_records.py").path
        let shapes = [(layers: 1, heads: 1, dim: 1), (layers: 2, heads: 1, dim: 3), (layers: 3, heads: 2, dim: 7), (layers: 2, heads: 3, dim: 4)]
        let models = shapes.map { SyntheticKV.model(layers: $0.layers, kvHeads: $0.heads, headDim: $0.dim, tokensPerImage: 8, dtype: .f16, seed: UInt64($0.dim * 10 + $0.heads)) }
        var layouts = Set<Bool>()
        for spec in ["int8", "int8:compact"] {
            let store = try makeStore(codec: try CodecSettings(parsing: spec), models: models)
            var written: [(ModelDescriptor, Digest)] = []
            for model in models {
                for tokens in 1...8 {
                    var kv = SyntheticKV.make(layers: model.layers, tokens: tokens, kvHeads: model.kvHeads, headDim: model.headDim, seed: UInt64(tokens), modelSeed: 5)
                    kv.keys[0] = 0; kv.values[kv.values.count - 1] = 0x1p-140  // zero, a subnormal
                    if kv.keys.count > 2 { kv.keys[1] = 3e38; kv.values[1] = -1e-30 }
                    if tokens == 3 { kv.values = kv.values.map { $0 * 0x1p-130 } }  // all subnormal or nearly
                    let image = SyntheticKV.imageDigest(tokens)
                    try store.put(kv, image: image, model: model.fingerprint)
                    written.append((model, image))
                }
            }
            let dump = temporaryDirectory("dump")
            let result = try runProcess(interpreter, (interpreter == "/usr/bin/env" ? ["python3"] : []) + [script, store.path, "--dump", dump])
            #expect(result.status == 0, "\(spec): \(result.output) \(result.error)")
            for (model, image) in written {
                let base = (dump as NSString).appendingPathComponent("\(model.fingerprint.hex)-\(image.hex)-int8")
                let (header, swift, _) = try #require(try store.read { try $0.record(RecordKey(model: model.fingerprint, image: image, codec: .int8)) })
                layouts.insert(header.int8RowScales)
                let what = "\(spec) \(model.layers)x\(model.kvHeads)x\(model.headDim) tokens \(header.tokens) row scales \(header.int8RowScales)"
                #expect(try readFloats(base + ".k.f32").map(\.bitPattern) == swift.keys.map(\.bitPattern), "\(what): keys")
                #expect(try readFloats(base + ".v.f32").map(\.bitPattern) == swift.values.map(\.bitPattern), "\(what): values")
                let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + ".json"))) as? [String: Any])
                #expect(json["int8RowScales"] as? Bool == header.int8RowScales && json["bodyLength"] as? Int == header.bodyLength, "\(what)")
            }
        }
        #expect(layouts == [false, true], "both int8 layouts were written")
    }

    /// The Python reader refuses a relative record whose reference is gone or was replaced, as
    /// Swift does, and says which.
    @Test func thePythonReaderNeedsTheReferenceARecordWasWrittenAgainst() throws {
        let (interpreter, reason) = try Self.python()
        guard let interpreter else { try Test.cancel("interop check skipped: \(reason)") }
        let script = Self.repository.appendingPathComponent("Tools/interop/read_records.py").path
        func python(_ arguments: [String]) throws -> ProcessResult {
            try runProcess(interpreter, (interpreter == "/usr/bin/env" ? ["python3"] : []) + [script] + arguments)
        }
        let model = SyntheticKV.model(layers: 2, kvHeads: 2, headDim: 8, tokensPerImage: 1, dtype: .f16, seed: 7)
        let store = try makeStore(codec: try CodecSettings(parsing: "hq:ref=1"), models: [model])
        for n in 0..<3 {
            try store.put(SyntheticKV.make(layers: 2, tokens: 1, kvHeads: 2, headDim: 8, seed: UInt64(n)), image: SyntheticKV.imageDigest(n), model: model.fingerprint)
        }
        #expect(try python([store.path]).status == 0)
        let key = ModelReference.key(model: model.fingerprint)
        let other = try ModelReference.make(SyntheticKV.make(layers: 2, tokens: 1, kvHeads: 2, headDim: 8, seed: 50), model: model.fingerprint, dtype: .f16)
        try store.write { try $0.transaction.putRecord(key, other.record.bytes) }
        let replaced = try python([store.path])
        #expect(replaced.status == 1 && replaced.output.components(separatedBy: "written against reference").count == 3, "\(replaced.output)")
        try store.write { _ = try $0.transaction.deleteRecord(key) }
        let missing = try python([store.path])
        #expect(missing.status == 1 && missing.output.components(separatedBy: "which is missing").count == 3, "\(missing.output)")
    }
}

/// The bytes stored under `key`, unverified.
func storedRecord(_ store: CacheStore, _ key: RecordKey) throws -> [UInt8]? {
    try store.read { try $0.readTransaction.recordBytes(key) }
}
