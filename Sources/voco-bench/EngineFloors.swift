import Foundation
import SafeTensors
import VoCoCompute

// MARK: - The memory-bandwidth floor of decoding

/// A plain read, on the engine's threads, of the weight bytes one decoded token streams: every
/// matrix of the language model's layers and the output head (`lm_head`, or the embedding table
/// when tied), read where they lie in the map. Tokens/s at this speed is what decoding could
/// reach if it did nothing but read its weights once.
final class WeightRead {
    let threads: ComputeThreads
    private let chunks: [UnsafeRawBufferPointer]  // 1 MiB pieces of every tensor
    private let keepAlive: TensorDirectory
    let bytes: Int
    private(set) var checksum: UInt32 = 0

    init(directory: String, threads: ComputeThreads) throws {
        let weights = try TensorDirectory(directory: directory)
        let head = weights.names.contains("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight"
        let names = weights.names.filter { ($0.hasPrefix("model.layers.") && $0.hasSuffix("_proj.weight")) || $0 == head }
        var chunks: [UnsafeRawBufferPointer] = []
        for name in names {
            guard let view = weights[name] else { continue }
            var start = 0
            while start < view.bytes.count {
                let end = min(view.bytes.count, start + (1 << 20))
                chunks.append(UnsafeRawBufferPointer(rebasing: view.bytes[start..<end]))
                start = end
            }
        }
        self.chunks = chunks
        bytes = chunks.reduce(0) { $0 + $1.count }
        keepAlive = weights
        self.threads = threads
    }

    /// Reads every byte once (XOR of 64-byte words, so nothing is optimised away).
    func run() {
        let sums = UnsafeMutablePointer<SIMD16<UInt32>>.allocate(capacity: threads.count)
        sums.initialize(repeating: .zero, count: threads.count)
        defer { sums.deallocate() }
        threads.forEach(chunks.count) { item, worker in
            let chunk = chunks[item]
            var acc = SIMD16<UInt32>.zero
            var offset = 0
            while offset + 64 <= chunk.count {
                acc ^= chunk.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt32>.self)
                offset += 64
            }
            sums[worker] ^= acc
        }
        for w in 0..<threads.count { checksum ^= sums[w].wrappedSum() }
    }
}
