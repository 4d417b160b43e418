import Foundation
import SafeTensors
import VoCoModel
import VoCoStore

// MARK: - A trained head that scores a stored cache against target phrases

/// `relevance/head.safetensors` in the model directory (Tools/demo/relevance_head.py trains it on
/// stored caches): an MLP from one image's cache (every layer's K rows, then every layer's V
/// rows, as the store keeps them: K before RoPE) to one logit per target phrase ("red circle").
/// Its metadata names the targets and the model fingerprint it was trained for; a head made
/// for another model is refused. Reads only the cache, never the image.
public struct RelevanceHead: Sendable {
    /// In a folder of its own: a `*.safetensors` file beside the weights would be taken for one
    /// (shard discovery, the model fingerprint).
    public static let fileName = "relevance/head.safetensors"
    public let targets: [String]
    let inputs: Int
    let hidden: Int
    let hiddenWeight: [Float]  // [hidden][inputs]
    let hiddenBias: [Float]
    let outputWeight: [Float]  // [targets][hidden]
    let outputBias: [Float]

    /// The head in `directory`, nil when there is none.
    public static func load(directory: String, fingerprint: Digest) throws -> RelevanceHead? {
        let path = (directory as NSString).appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        func fail(_ reason: String) -> RelevanceError { RelevanceError(path: path, reason: reason) }
        let file = try SafeTensorsFile(path: path)
        guard let text = file.metadata["targets"], let targets = try? JSONDecoder().decode([String].self, from: Data(text.utf8)), !targets.isEmpty else {
            throw fail("its metadata has no \"targets\" list")
        }
        guard let made = file.metadata["model_fingerprint"] else { throw fail("its metadata names no model_fingerprint") }
        guard made.lowercased() == fingerprint.hex else {
            throw RelevanceError(path: path, reason: "trained for model \(made), but this model's fingerprint is \(fingerprint.hex): train it again (Tools/demo/relevance_head.py)",
                                 madeFor: made)
        }
        let w1 = try file.tensor("hidden.weight"), b1 = try file.tensor("hidden.bias")
        let w2 = try file.tensor("output.weight"), b2 = try file.tensor("output.bias")
        guard w1.shape.count == 2, b1.shape == [w1.shape[0]], w2.shape == [targets.count, w1.shape[0]], b2.shape == [targets.count],
              w1.shape[0] > 0, w1.shape[1] > 0, w1.count <= 1 << 26, w2.count <= 1 << 26 else {
            throw fail("tensor shapes \(w1.shape), \(b1.shape), \(w2.shape), \(b2.shape) do not make an MLP over \(targets.count) targets")
        }
        return RelevanceHead(targets: targets, inputs: w1.shape[1], hidden: w1.shape[0], hiddenWeight: w1.floats(), hiddenBias: b1.floats(),
                             outputWeight: w2.floats(), outputBias: b2.floats())
    }

    /// The logit of `target` for each cache; nil when the head has no such target. A cache whose
    /// size does not match the head's input is an error naming both.
    public func scores(_ target: String, caches: [VoCoCache]) throws -> [Float]? {
        guard let column = targets.firstIndex(of: target.lowercased()) else { return nil }
        var hiddenValues = [Float](repeating: 0, count: hidden)
        return try caches.map { cache in
            guard cache.keys.count + cache.values.count == inputs else {
                throw RelevanceError(path: Self.fileName, reason: "the head reads \(inputs) values per cache; this cache has \(cache.keys.count + cache.values.count)")
            }
            // The input is the keys, then the values: read in place, no joined copy per cache.
            let keyCount = cache.keys.count
            cache.keys.withUnsafeBufferPointer { k in
                cache.values.withUnsafeBufferPointer { v in
                    hiddenWeight.withUnsafeBufferPointer { w in
                        for j in 0..<hidden {
                            var sum = hiddenBias[j]
                            let row = w.baseAddress! + j * inputs
                            for i in 0..<keyCount { sum += row[i] * k[i] }
                            for i in 0..<v.count { sum += row[keyCount + i] * v[i] }
                            hiddenValues[j] = max(0, sum)
                        }
                    }
                }
            }
            var logit = outputBias[column]
            for j in 0..<hidden { logit += outputWeight[column * hidden + j] * hiddenValues[j] }
            return logit
        }
    }
}
