import Foundation
import VoCoStore

// MARK: - The settings the guarantees rest on, checked at connect

/// Asks every node (masters and replicas: a replica becomes a master after a failover) for the
/// settings the store's promises depend on (docs/store-redis.md):
/// - `appendonly yes`: without the AOF, a node that restarts comes back with its last snapshot
///   and forgets every write since. Refused (strict) or warned (relaxed).
/// - `appendfsync always`: each write is on disk before the node answers. `everysec` may lose
///   the last second of acknowledged writes if a master and its replicas all lose power at once;
///   `no` leaves it to the OS. Warned.
/// - `maxmemory-policy noeviction`: any other policy lets a full node delete keys (records,
///   jobs) on its own. Refused when `maxmemory` is set, else warned.
/// A node that refuses CONFIG GET (a managed service, an ACL) is warned about, not refused.
struct PersistenceCheck {
    let client: RedisClient
    /// Refuse what breaks the guarantees (writable opens with durability=strict), else warn.
    let strict: Bool

    func run() throws -> [String] {
        var refusals: [String] = [], warnings: [String] = []
        for node in client.router.nodes {
            let reply: RedisReply
            do {
                reply = try client.router.direct(RedisCommand("CONFIG", "GET", "appendonly", "appendfsync", "maxmemory", "maxmemory-policy"), to: node)
            } catch {
                warnings.append("\(node): cannot read its settings (\(error)); the store's durability depends on them (docs/store-redis.md)")
                continue
            }
            if let message = reply.errorMessage {
                warnings.append("\(node): CONFIG GET refused (\(message)); make sure it runs with appendonly yes, appendfsync always and maxmemory-policy noeviction")
                continue
            }
            let flat = reply.elements ?? []
            var config: [String: String] = [:]
            for i in stride(from: 0, to: flat.count - 1, by: 2) { config[flat[i].text ?? ""] = flat[i + 1].text }
            let (refuse, warn) = Self.judge(config, node: node)
            refusals += refuse
            warnings += warn
        }
        if strict, !refusals.isEmpty {
            throw StoreError.backend(path: client.location, operation: "checking the cluster's persistence settings",
                                     reason: refusals.joined(separator: "; ") + " (or open the store with ?durability=relaxed to accept the risk)")
        }
        return (strict ? [] : refusals) + warnings
    }

    /// What is wrong with one node's settings: reasons to refuse, reasons to warn.
    static func judge(_ config: [String: String], node: RedisEndpoint) -> (refuse: [String], warn: [String]) {
        var refuse: [String] = [], warn: [String] = []
        if config["appendonly"] != "yes" {
            refuse.append("\(node) runs with appendonly \(config["appendonly"] ?? "unknown"): a restart would forget every write since its last snapshot; set appendonly yes")
        }
        switch config["appendfsync"] {
        case "always": break
        case "everysec":
            warn.append("\(node) runs with appendfsync everysec: if a master and its replicas lose power together, up to a second of acknowledged writes is lost; appendfsync always closes that gap")
        default:
            warn.append("\(node) runs with appendfsync \(config["appendfsync"] ?? "unknown"): the OS decides when writes reach the disk; set appendfsync always")
        }
        let policy = config["maxmemory-policy"] ?? "unknown"
        if policy != "noeviction" {
            let limited = (config["maxmemory"].flatMap(Int.init) ?? 0) > 0
            let reason = "\(node) runs with maxmemory-policy \(policy): a full node would delete records or jobs on its own; set maxmemory-policy noeviction"
            if limited { refuse.append(reason) } else { warn.append(reason + " (harmless while maxmemory is 0)") }
        }
        return (refuse, warn)
    }
}
