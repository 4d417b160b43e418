import Foundation

// MARK: - A small seeded random number generator

/// xoshiro256** seeded through SplitMix64: the same seed gives the same stream on every machine.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9e37_79b9_7f4a_7c15
            var z = x
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1) with 24 bits.
    public mutating func nextUnit() -> Float { Float(next() >> 40) * 0x1p-24 }
}

// MARK: - Choosing the next token

/// Greedy (temperature 0) or temperature + top-p (nucleus) sampling, seeded. Buffers are sized
/// to the vocabulary once, so choosing a token never allocates.
public final class TokenSampler {
    public let vocabularySize: Int
    public let temperature: Float
    public let topP: Float
    private var generator: SeededGenerator
    private let probabilities: UnsafeMutablePointer<Float>  // [vocab]
    private let order: UnsafeMutablePointer<Int32>  // [vocab], token ids by falling probability

    public init(vocabularySize: Int, temperature: Float, topP: Float, seed: UInt64) {
        self.vocabularySize = vocabularySize
        self.temperature = temperature
        self.topP = topP
        generator = SeededGenerator(seed: seed)
        probabilities = .allocate(capacity: max(1, vocabularySize))
        order = .allocate(capacity: max(1, vocabularySize))
    }

    deinit {
        probabilities.deallocate()
        order.deallocate()
    }

    /// The next token for `logits` (`[vocab]`).
    public func next(_ logits: UnsafeBufferPointer<Float>) -> Int {
        let n = min(vocabularySize, logits.count)
        guard n > 0, let l = logits.baseAddress else { return 0 }
        guard temperature > 0 else { return Self.argmax(l, n) }

        // softmax(logits / temperature)
        var maximum = -Float.infinity
        for i in 0..<n { maximum = max(maximum, l[i]) }
        var total: Float = 0
        for i in 0..<n {
            let e = expf((l[i] - maximum) / temperature)
            probabilities[i] = e
            total += e
        }
        if topP >= 1 {
            var u = generator.nextUnit() * total
            for i in 0..<n {
                u -= probabilities[i]
                if u < 0 { return i }
            }
            return Self.argmax(l, n)
        }
        // Nucleus: the most probable tokens whose mass reaches top_p (at least one).
        for i in 0..<n { order[i] = Int32(i) }
        heapSortByFallingProbability(n)
        let target = max(topP, 0) * total
        var kept = 0, mass: Float = 0
        while kept < n && (kept == 0 || mass < target) {
            mass += probabilities[Int(order[kept])]
            kept += 1
        }
        var u = generator.nextUnit() * mass
        for j in 0..<kept {
            u -= probabilities[Int(order[j])]
            if u < 0 { return Int(order[j]) }
        }
        return Int(order[kept - 1])
    }

    /// The first index of the largest value (as `torch.argmax`).
    static func argmax(_ x: UnsafePointer<Float>, _ n: Int) -> Int {
        var best = 0
        for i in 1..<max(n, 1) where x[i] > x[best] { best = i }
        return best
    }

    /// In place, no allocation; ties keep no particular order but are broken by id below.
    private func heapSortByFallingProbability(_ n: Int) {
        // "a comes before b" = higher probability, then lower id.
        func before(_ a: Int32, _ b: Int32) -> Bool {
            let pa = probabilities[Int(a)], pb = probabilities[Int(b)]
            return pa > pb || (pa == pb && a < b)
        }
        // A heap whose root is the element that comes last; popping it to the end sorts.
        func siftDown(_ start: Int, _ end: Int) {
            var root = start
            while 2 * root + 1 < end {
                var child = 2 * root + 1
                if child + 1 < end && before(order[child], order[child + 1]) { child += 1 }
                guard before(order[root], order[child]) else { return }
                order.swapAt(root, child)
                root = child
            }
        }
        var start = n / 2 - 1
        while start >= 0 { siftDown(start, n); start -= 1 }
        var end = n - 1
        while end > 0 {
            order.swapAt(0, end)
            siftDown(0, end)
            end -= 1
        }
    }
}

private extension UnsafeMutablePointer where Pointee == Int32 {
    @inline(__always) func swapAt(_ i: Int, _ j: Int) { let t = self[i]; self[i] = self[j]; self[j] = t }
}
