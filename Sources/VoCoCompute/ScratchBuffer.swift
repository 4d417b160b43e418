import Foundation

// MARK: - Reusable scratch memory

/// A 64-byte aligned Float buffer that is reused across calls and grows (discarding its
/// contents) only when asked for more than it holds. Hot loops reserve once, up front, so
/// the per-token path never allocates.
public final class ScratchBuffer: @unchecked Sendable {
    public private(set) var capacity: Int
    public private(set) var pointer: UnsafeMutablePointer<Float>

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 16)
        pointer = Self.allocate(self.capacity)
    }

    deinit { free(pointer) }

    /// A pointer to at least `count` floats. Growth rounds up by half again, so a caller that
    /// asks for one more element each time reallocates rarely.
    @discardableResult
    public func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            free(pointer)
            capacity = max(count, capacity + capacity / 2)
            pointer = Self.allocate(capacity)
        }
        return pointer
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, count * MemoryLayout<Float>.stride) == 0, let raw else {
            fatalError("out of memory: cannot allocate \(count * 4) bytes of scratch")
        }
        return raw.bindMemory(to: Float.self, capacity: count)
    }
}

/// An owned, immutable Float array with a stable address (weights widened at load, test data).
public final class FloatStorage: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { if let b = $0.baseAddress { pointer.update(from: b, count: values.count) } }
    }

    deinit { pointer.deallocate() }
}

/// Zeroed Float buffers for one pass (a compression batch), freed together by `release()`.
/// Usage: `let arena = ScratchArena(); defer { arena.release() }`.
public final class ScratchArena {
    private var pointers: [UnsafeMutablePointer<Float>] = []

    public init() {}

    /// `count` zeroed floats, valid until `release()`.
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
        pointers.append(p)
        return p
    }

    public func release() {
        for p in pointers { p.deallocate() }
        pointers.removeAll()
    }

    deinit { release() }
}
