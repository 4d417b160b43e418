// MARK: - One image's cache, as plain Float32 buffers

/// The keys and values one image leaves in the compression pass, for every layer: what the
/// engine produces and what the store gives back. Plain buffers with their shape numbers, so the
/// store needs no model code.
public struct KVTensors: Equatable, Sendable {
    public var layers: Int
    /// P': rows kept per layer (k for `voco` mode).
    public var tokens: Int
    public var kvHeads: Int
    public var headDim: Int
    /// Compression-pass position of the first kept row; row r sat at `firstPosition + r`.
    public var firstPosition: Int
    /// True when K was taken before rotary embedding (the engine's contract).
    public var keysBeforeRoPE: Bool
    public var keys: [Float]   // [layers][tokens][kvHeads*headDim]
    public var values: [Float] // [layers][tokens][kvHeads*headDim]

    /// Values per row: kvHeads * headDim.
    public var channels: Int { kvHeads * headDim }

    /// Values per tensor (K or V): layers * tokens * channels.
    public var count: Int { layers * tokens * channels }

    public init(
        layers: Int, tokens: Int, kvHeads: Int, headDim: Int, firstPosition: Int,
        keysBeforeRoPE: Bool = true, keys: [Float], values: [Float]
    ) {
        self.layers = layers
        self.tokens = tokens
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.firstPosition = firstPosition
        self.keysBeforeRoPE = keysBeforeRoPE
        self.keys = keys
        self.values = values
    }

    /// Why these buffers cannot be stored, or nil when they can. Shape numbers must be positive,
    /// fit the header's 32-bit fields, and match the buffer lengths.
    func problem() -> String? {
        let fields = [("layers", layers), ("tokens", tokens), ("kvHeads", kvHeads), ("headDim", headDim)]
        for (name, value) in fields where value <= 0 || value > Int(UInt32.max) {
            return "\(name) is \(value); it must be in 1...\(UInt32.max)"
        }
        guard firstPosition >= 0, firstPosition <= Int(UInt32.max) else {
            return "firstPosition is \(firstPosition); it must be in 0...\(UInt32.max)"
        }
        let (perLayer, o1) = tokens.multipliedReportingOverflow(by: channels)
        let (total, o2) = perLayer.multipliedReportingOverflow(by: layers)
        guard !o1, !o2, total <= 1 << 36 else { return "the shape \(shape) is too large for one record" }
        if keys.count != total { return "keys hold \(keys.count) values; shape \(shape) needs \(total)" }
        if values.count != total { return "values hold \(values.count) values; shape \(shape) needs \(total)" }
        return nil
    }

    /// [layers, tokens, kvHeads, headDim]
    public var shape: [Int] { [layers, tokens, kvHeads, headDim] }
}

// MARK: - Value statistics (for inspection)

/// min, max, mean, standard deviation and largest magnitude of a set of values.
public struct ValueStatistics: Codable, Equatable, Sendable {
    public var min: Float
    public var max: Float
    public var mean: Float
    public var std: Float
    public var absMax: Float

    init(_ values: ArraySlice<Float>) {
        var lo = Float.infinity, hi = -Float.infinity, sum = 0.0, squares = 0.0
        for x in values {
            lo = Swift.min(lo, x)
            hi = Swift.max(hi, x)
            sum += Double(x)
            squares += Double(x) * Double(x)
        }
        let n = Double(Swift.max(values.count, 1))
        let mean = sum / n
        self.init(min: lo, max: hi, mean: Float(mean), std: Float(Swift.max(0, squares / n - mean * mean).squareRoot()),
                  absMax: Swift.max(abs(lo), abs(hi)))
    }

    init(min: Float, max: Float, mean: Float, std: Float, absMax: Float) {
        (self.min, self.max, self.mean, self.std, self.absMax) = (min, max, mean, std, absMax)
    }
}

public struct LayerStatistics: Codable, Equatable, Sendable {
    public var layer: Int
    public var key: ValueStatistics
    public var value: ValueStatistics
}

extension KVTensors {
    /// Statistics of K and V for every layer.
    public func layerStatistics() -> [LayerStatistics] {
        let block = tokens * channels
        return (0..<layers).map { layer in
            let range = (layer * block)..<((layer + 1) * block)
            return LayerStatistics(layer: layer, key: ValueStatistics(keys[range]), value: ValueStatistics(values[range]))
        }
    }
}
