import Foundation
import Testing
@testable import VoCoStore

@Suite struct ModelFingerprintTests {
    /// A model directory: config.json, preprocessor_config.json, two weight shards, a tokenizer,
    /// and a separate vision tower directory named by mm_vision_tower.
    private func modelDirectory() throws -> String {
        let root = temporaryDirectory("model")
        let tower = (root as NSString).appendingPathComponent("clip")
        try FileManager.default.createDirectory(atPath: tower, withIntermediateDirectories: true)
        let files = [
            "config.json": #"{"model_type": "llava_llama", "mm_vision_tower": "clip"}"#,
            "preprocessor_config.json": #"{"crop_size": 336}"#,
            "model-00001-of-00002.safetensors": "weights one",
            "model-00002-of-00002.safetensors": "weights two",
            "tokenizer.json": "{}",
            "clip/config.json": #"{"hidden_size": 8}"#,
            "clip/model.safetensors": "tower weights",
        ]
        for (name, text) in files {
            try Data(text.utf8).write(to: URL(fileURLWithPath: (root as NSString).appendingPathComponent(name)))
        }
        return root
    }

    @Test func theFingerprintIsTheSHA256OfASha256sumStyleManifest() throws {
        let root = try modelDirectory()
        let result = try ModelFingerprint.compute(directory: root)
        func line(_ text: String, _ name: String) -> String { "\(Digest.sha256(Array(text.utf8)).hex)  \(name)\n" }
        let manifest = "voco-model-fingerprint 1\n"
            + line(#"{"model_type": "llava_llama", "mm_vision_tower": "clip"}"#, "config.json")
            + line("weights one", "model-00001-of-00002.safetensors")
            + line("weights two", "model-00002-of-00002.safetensors")
            + line(#"{"crop_size": 336}"#, "preprocessor_config.json")
            + line(#"{"hidden_size": 8}"#, "vision_tower/config.json")
            + line("tower weights", "vision_tower/model.safetensors")
        #expect(result.manifest == manifest)
        #expect(result.fingerprint == Digest.sha256(Array(manifest.utf8)))
        #expect(result.files.map(\.byteCount) == [56, 11, 11, 18, 18, 13])
    }

    @Test func weightHashesAreCachedInTheStoreAndRefreshedWhenAFileChanges() throws {
        let root = try modelDirectory()
        let store = try makeStore(models: [])
        let first = try ModelFingerprint.compute(directory: root, store: store)
        #expect(first.filesHashed == 6)
        let second = try ModelFingerprint.compute(directory: root, store: store)
        #expect(second.fingerprint == first.fingerprint && second.filesHashed == 3)  // only the JSON files

        // Same size, new content: mtime/ctime change, so the file is hashed again.
        let shard = (root as NSString).appendingPathComponent("model-00002-of-00002.safetensors")
        Thread.sleep(forTimeInterval: 0.01)
        try Data("weights 2!!".utf8).write(to: URL(fileURLWithPath: shard))
        let third = try ModelFingerprint.compute(directory: root, store: store)
        #expect(third.fingerprint != first.fingerprint && third.filesHashed == 4)
        #expect(third.fingerprint == (try ModelFingerprint.compute(directory: root)).fingerprint)
    }

    @Test func configChangesChangeTheFingerprintAndTokenizersDoNot() throws {
        let root = try modelDirectory()
        let before = try ModelFingerprint.compute(directory: root).fingerprint
        try Data("{\"changed\": true}".utf8).write(to: URL(fileURLWithPath: (root as NSString).appendingPathComponent("tokenizer.json")))
        #expect(try ModelFingerprint.compute(directory: root).fingerprint == before)
        try Data(#"{"model_type": "llava_llama", "mm_vision_tower": "clip", "rope_theta": 1}"#.utf8)
            .write(to: URL(fileURLWithPath: (root as NSString).appendingPathComponent("config.json")))
        #expect(try ModelFingerprint.compute(directory: root).fingerprint != before)
    }

    @Test func aDirectoryWithoutConfigIsNotAModel() throws {
        let root = temporaryDirectory("empty")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        #expect { _ = try ModelFingerprint.compute(directory: root) } throws: { "\($0)".contains("no config.json") }
    }
}
