import Foundation
import VoCoModel
import VoCoStore

// MARK: - Decoded caches kept in memory, bounded in bytes

/// Engine caches by (image, model), least recently used evicted first once their bytes pass
/// `capacity`. A record is immutable (the same image and model always give the same cache), so
/// an entry stays right whatever was written to the store since. Thread-safe.
public final class CacheLRU: @unchecked Sendable {
    public struct Key: Hashable, Sendable {
        public var image: Digest
        public var model: Digest
    }

    private struct Entry {
        let cache: VoCoCache
        let bytes: Int
        var used: UInt64
    }

    public let capacity: Int
    private let lock = NSLock()
    private var entries: [Key: Entry] = [:]
    private var clock: UInt64 = 0
    private var bytes = 0
    private var hits = 0, misses = 0, evictions = 0

    public init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// Bytes an entry is charged: its keys and values.
    public static func bytes(of cache: VoCoCache) -> Int {
        (cache.keys.count + cache.values.count) * MemoryLayout<Float>.stride
    }

    public func get(_ key: Key) -> VoCoCache? {
        lock.withLock {
            guard entries[key] != nil else {
                misses += 1
                return nil
            }
            hits += 1
            clock += 1
            entries[key]!.used = clock
            return entries[key]!.cache
        }
    }

    /// Keeps `cache` unless it alone is over the capacity; evicts the least recently used
    /// entries to fit (a scan per eviction: entries number thousands, not millions).
    public func put(_ key: Key, _ cache: VoCoCache) {
        let size = Self.bytes(of: cache)
        lock.withLock {
            if let old = entries.removeValue(forKey: key) { bytes -= old.bytes }
            guard size <= capacity else { return }
            while bytes + size > capacity, let victim = entries.min(by: { $0.value.used < $1.value.used }) {
                entries[victim.key] = nil
                bytes -= victim.value.bytes
                evictions += 1
            }
            clock += 1
            entries[key] = Entry(cache: cache, bytes: size, used: clock)
            bytes += size
        }
    }

    public var statistics: CacheStatistics {
        lock.withLock {
            CacheStatistics(hits: hits, misses: misses, evictions: evictions, entries: entries.count, bytes: bytes, capacity: capacity)
        }
    }
}
