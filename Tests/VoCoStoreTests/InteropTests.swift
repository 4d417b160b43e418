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

    @Test func thePythonReaderReproducesEveryCodecsTensors() throws {
        let (interpreter, reason) = try Self.python()
        guard let interpreter else {
            print("interop check skipped: \(reason)")
            try Test.cancel("interop check skipped: \(reason)")
        }
        let script = Self.repository.appendingPathComponent("Tools/interop/read_records.py").path
        let models = ValueType.allCases.map { dtype in
            // 2 heads of 7: odd channel counts exercise q4's last nibble and short last group.
            SyntheticKV.model(layers: 3, kvHeads: 2, headDim: 7, tokensPerImage: 2, dtype: dtype, seed: UInt64(dtype.rawValue))
        }
        for codec in RecordCodec.allCases {
            let store = try makeStore(codec: CodecSettings(codec: codec, groupSize: 6), models: models)
            var written: [(ModelDescriptor, Digest, KVTensors)] = []
            for model in models {
                for n in 0..<2 {
                    let kv = SyntheticKV.make(layers: 3, tokens: 1 + n, kvHeads: 2, headDim: 7, firstPosition: 10 + n, seed: UInt64(n), modelSeed: 3)
                    let image = SyntheticKV.imageDigest(n)
                    try store.put(kv, image: image, model: model.fingerprint)
                    written.append((model, image, kv))
                }
            }
            let dump = temporaryDirectory("dump")
            let arguments = (interpreter == "/usr/bin/env" ? ["python3"] : []) + [script, store.path, "--dump", dump]
            let result = try runProcess(interpreter, arguments)
            #expect(result.status == 0, "\(codec.name): \(result.output) \(result.error)")
            for (model, image, original) in written {
                let base = (dump as NSString).appendingPathComponent("\(model.fingerprint.hex)-\(image.hex)-\(codec.name)")
                let swift = try #require(try store.get(image: image, model: model.fingerprint))
                let keys = try readFloats(base + ".k.f32"), values = try readFloats(base + ".v.f32")
                let what = "\(codec.name) \(model.dtype) tokens \(original.tokens)"
                // The same tensors, bit for bit, as Swift decodes them...
                #expect(keys.map(\.bitPattern) == swift.keys.map(\.bitPattern), "\(what): keys")
                #expect(values.map(\.bitPattern) == swift.values.map(\.bitPattern), "\(what): values")
                // ...which for the lossless codecs are the stored values exactly.
                if codec.isLossless {
                    let dtype = try model.valueType()
                    #expect(keys.map(\.bitPattern) == rounded(original.keys, to: dtype).map(\.bitPattern), "\(what): keys")
                    #expect(values.map(\.bitPattern) == rounded(original.values, to: dtype).map(\.bitPattern), "\(what): values")
                }
                let header = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + ".json"))) as? [String: Any])
                #expect(header["firstPosition"] as? Int == original.firstPosition && header["tokens"] as? Int == original.tokens)
                #expect(header["keysBeforeRoPE"] as? Bool == true && header["dtype"] as? String == model.dtype)
            }

            // A corrupted record is refused by the Python reader too.
            let key = RecordKey(model: models[0].fingerprint, image: SyntheticKV.imageDigest(0), codec: codec)
            try store.write { txn in
                var bytes = try #require(try txn.readTransaction.recordBytes(key))
                bytes[RecordHeader.length + 1] ^= 0x40
                try txn.transaction.putRecord(key, bytes)
            }
            let refused = try runProcess(interpreter, (interpreter == "/usr/bin/env" ? ["python3"] : []) + [script, store.path])
            #expect(refused.status == 1 && refused.output.contains("checksum mismatch"), "\(codec.name): \(refused.output)")
        }
    }
}
