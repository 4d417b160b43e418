import Foundation

// MARK: - Deterministic caches for tests, benchmarks and the debug writer

/// Caches with value distributions like those of LLaMA-family models, made from a seed.
/// K (before RoPE): per layer and channel a mean N(0, 0.5) and a spread exp(N(0, 0.5)); one
/// channel in 32 is an outlier channel (spread x6 and a mean of ±(4...12)), as pre-RoPE keys
/// have. The channel profile depends only on `modelSeed`, like a property of the model.
/// V: N(0, 1) times a per-channel spread exp(N(0, 0.2)) and a per-token scale exp(N(0, 0.3)).
public enum SyntheticKV {
    public static func make(layers: Int, tokens: Int, kvHeads: Int, headDim: Int, firstPosition: Int = 0,
                            seed: UInt64, modelSeed: UInt64 = 0) -> KVTensors {
        let channels = kvHeads * headDim
        var keys = [Float](repeating: 0, count: layers * tokens * channels)   // [layers][tokens][channels]
        var values = [Float](repeating: 0, count: layers * tokens * channels) // [layers][tokens][channels]
        var profile = SplitMix64(seed: modelSeed &* 0x9E37_79B9_7F4A_7C15 &+ 1)
        var noise = SplitMix64(seed: seed)
        for layer in 0..<layers {
            var keyMean = [Float](repeating: 0, count: channels), keySpread = keyMean, valueSpread = keyMean
            for c in 0..<channels {
                keyMean[c] = 0.5 * profile.gaussian()
                keySpread[c] = exp(0.5 * profile.gaussian())
                valueSpread[c] = exp(0.2 * profile.gaussian())
                if profile.next() % 32 == 0 {
                    keySpread[c] *= 6
                    keyMean[c] = (profile.next() % 2 == 0 ? 1 : -1) * (4 + 8 * profile.uniform())
                }
            }
            for t in 0..<tokens {
                let base = (layer * tokens + t) * channels
                let tokenScale = exp(0.3 * noise.gaussian())
                for c in 0..<channels {
                    keys[base + c] = keyMean[c] + keySpread[c] * noise.gaussian()
                    values[base + c] = tokenScale * valueSpread[c] * noise.gaussian()
                }
            }
        }
        return KVTensors(layers: layers, tokens: tokens, kvHeads: kvHeads, headDim: headDim,
                         firstPosition: firstPosition, keys: keys, values: values)
    }

    /// A registrable model for synthetic caches; its fingerprint is made from the arguments.
    public static func model(layers: Int, kvHeads: Int, headDim: Int, tokensPerImage: Int, dtype: ValueType, seed: UInt64 = 0) -> ModelDescriptor {
        let text = "synthetic model \(seed): \(layers) layers, \(kvHeads)x\(headDim), k \(tokensPerImage), \(dtype.name)"
        return ModelDescriptor(fingerprint: Digest.sha256(Array(text.utf8)), name: "synthetic-\(seed)", layers: layers, kvHeads: kvHeads,
                               headDim: headDim, tokensPerImage: tokensPerImage, dtype: dtype.name, registeredAt: "2026-01-01T00:00:00Z")
    }

    /// A digest standing in for an image's, made from a number.
    public static func imageDigest(_ n: Int) -> Digest { Digest.sha256(Array("synthetic image \(n)".utf8)) }
}

/// SplitMix64: small, fast, and the same on every platform (tests draw from it too).
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// In [0, 1).
    mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Standard normal (Box-Muller).
    mutating func gaussian() -> Float {
        let u1 = max(uniform(), 0x1p-24), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * Float.pi * u2)
    }
}
