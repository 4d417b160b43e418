import VoCoCompute

// MARK: - Keys and values the language model attends to

/// Rotated keys and values of one or more sequences, preallocated to `capacity` rows each.
/// The query pass fills the first rows with placed image caches and appends text rows;
/// the compression pass uses a transient cache of one layer, overwritten layer by layer.
public final class KVCache {
    /// Stored layers: the model's layer count, or 1 for a transient cache.
    public let layers: Int
    public let sequences: Int
    /// Rows per sequence.
    public let capacity: Int
    /// `kvHeads * headDim`.
    public let width: Int
    /// Rows filled in every sequence.
    public internal(set) var count = 0
    private let keyStorage: UnsafeMutablePointer<Float>  // [layers][sequences][capacity][width], after RoPE
    private let valueStorage: UnsafeMutablePointer<Float>  // [layers][sequences][capacity][width]

    public init(layers: Int, sequences: Int, capacity: Int, width: Int) {
        self.layers = layers
        self.sequences = sequences
        self.capacity = capacity
        self.width = width
        let total = max(1, layers * sequences * capacity * width)
        keyStorage = .allocate(capacity: total)
        keyStorage.initialize(repeating: 0, count: total)
        valueStorage = .allocate(capacity: total)
        valueStorage.initialize(repeating: 0, count: total)
    }

    deinit {
        keyStorage.deallocate()
        valueStorage.deallocate()
    }

    /// `[capacity][width]` keys of `sequence` at `layer` (a transient cache maps every layer to one).
    @inline(__always)
    public func keys(layer: Int, sequence: Int = 0) -> UnsafeMutablePointer<Float> {
        keyStorage + ((layer % layers) * sequences + sequence) * capacity * width
    }

    @inline(__always)
    public func values(layer: Int, sequence: Int = 0) -> UnsafeMutablePointer<Float> {
        valueStorage + ((layer % layers) * sequences + sequence) * capacity * width
    }

    /// Rows still free in every sequence.
    public var remaining: Int { capacity - count }
}
