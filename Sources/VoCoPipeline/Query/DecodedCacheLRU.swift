import Foundation
import VoCoModel
import VoCoStore

// MARK: - Decoded caches kept between questions

/// Decoded engine caches keyed by (model, image), bounded by the bytes their keys and values
/// take (not by count); the least recently used go first. Thread-safe.
public final class DecodedCacheLRU: @unchecked Sendable {
    public struct Key: Hashable, Sendable {
        public let model: Digest
        public let image: Digest
        public init(model: Digest, image: Digest) {
            self.model = model
            self.image = image
        }
    }

    private final class Node {
        let key: Key
        let cache: VoCoCache
        let bytes: Int
        var newer: Node?
        weak var older: Node?
        init(key: Key, cache: VoCoCache, bytes: Int) {
            self.key = key
            self.cache = cache
            self.bytes = bytes
        }
    }

    private let lock = NSLock()
    private var nodes: [Key: Node] = [:]
    private var oldest: Node?  // strong chain oldest -> newest through `newer`
    private weak var newest: Node?
    private var stats: CacheStatistics

    /// `capacity` bytes at most (a negative value is taken as 0: nothing is kept).
    public init(capacity: Int) {
        stats = CacheStatistics(capacity: max(0, capacity))
    }

    /// The bytes a cache holds in memory (keys and values as F32).
    public static func bytes(of cache: VoCoCache) -> Int {
        (cache.keys.count + cache.values.count) * MemoryLayout<Float>.stride
    }

    public var statistics: CacheStatistics {
        lock.lock(); defer { lock.unlock() }
        return stats
    }

    /// The cache under `key` (counted as a hit, and made the newest), or nil (a miss).
    public func get(_ key: Key) -> VoCoCache? {
        lock.lock(); defer { lock.unlock() }
        guard let node = nodes[key] else {
            stats.misses += 1
            return nil
        }
        stats.hits += 1
        unlink(node)
        append(node)
        return node.cache
    }

    /// Keeps `cache` under `key` as the newest, evicting the oldest until the bound holds. A cache
    /// larger than the whole capacity is not kept.
    public func put(_ key: Key, _ cache: VoCoCache) {
        let size = Self.bytes(of: cache)
        lock.lock(); defer { lock.unlock() }
        if let old = nodes.removeValue(forKey: key) {
            unlink(old)
            stats.bytes -= old.bytes
            stats.entries -= 1
        }
        guard size <= stats.capacity else { return }
        while stats.bytes + size > stats.capacity, let victim = oldest {
            unlink(victim)
            nodes[victim.key] = nil
            stats.bytes -= victim.bytes
            stats.entries -= 1
            stats.evictions += 1
        }
        let node = Node(key: key, cache: cache, bytes: size)
        nodes[key] = node
        append(node)
        stats.bytes += size
        stats.entries += 1
    }

    /// Whether `key` is held (no statistics, no reordering).
    public func contains(_ key: Key) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return nodes[key] != nil
    }

    private func unlink(_ node: Node) {
        let older = node.older, newer = node.newer
        if let older { older.newer = newer } else { oldest = newer }
        if let newer { newer.older = older } else { newest = older }
        node.newer = nil
        node.older = nil
    }

    private func append(_ node: Node) {
        if let last = newest {
            last.newer = node
            node.older = last
        } else {
            oldest = node
        }
        newest = node
    }
}
