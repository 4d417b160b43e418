import Foundation

// MARK: - Cluster routing
//
// Everything that knows the cluster has many nodes is in this file: which node serves a slot
// (CLUSTER SLOTS), following MOVED and ASK redirects, waiting out a failover, pipelining commands
// per node, and WAIT for replicas. Callers hand in commands with the slot of their keys.
//
// A command may be sent again after a broken connection, a failover or a WAIT that fell short,
// even when it already ran: every command the store sends must be safe to repeat (SET, HSET,
// DEL, and scripts written to be idempotent).

/// How a command ended up, for the retry loop.
private enum Outcome {
    case done(RedisReply)
    case moved(slot: Int, to: RedisEndpoint)
    case ask(RedisEndpoint)
    case retry(String)
    /// Retrying cannot help (the node refused the credentials).
    case failed(Error)
}

public final class ClusterRouter: @unchecked Sendable {
    let url: RedisStoreURL
    private let lock = NSLock()
    private let refreshLock = NSLock()
    // [16384] the master serving each slot, nil where none does.
    private var owners = [RedisEndpoint?](repeating: nil, count: HashSlot.count)
    private var replicas: [RedisEndpoint: [RedisEndpoint]] = [:]
    /// How many replicas each master says are connected (ROLE): what WAIT can count on.
    private var connectedReplicas: [RedisEndpoint: Int] = [:]
    /// The slot map is learnt again when older than this, so that replicas that joined (or a
    /// topology that changed without a redirect) are seen within seconds.
    static let topologyMaxAge: TimeInterval = 2
    private var idle: [RedisEndpoint: [RedisConnection]] = [:]
    private var refreshedAt = Date.distantPast
    private var counts = Redirects()

    /// How many redirects and retries commands met (for tests and benchmarks).
    public struct Redirects: Equatable, Sendable {
        public var moved = 0, ask = 0, retries = 0
    }
    public var redirects: Redirects { lock.withLock { counts } }

    /// Connects to the first seed that answers and learns the slot map.
    public init(url: RedisStoreURL) throws {
        self.url = url
        try refresh(olderThan: .distantFuture)
    }

    /// The masters serving slots, and their replicas, as last learnt.
    public var masters: [RedisEndpoint] { lock.withLock { Array(Set(owners.compactMap { $0 })).sorted { $0.description < $1.description } } }
    public var nodes: [RedisEndpoint] {
        lock.withLock { Array(Set(owners.compactMap { $0 }).union(replicas.values.joined())).sorted { $0.description < $1.description } }
    }
    public func owner(of slot: Int) -> RedisEndpoint? { lock.withLock { owners[slot] } }
    public func replicas(of master: RedisEndpoint) -> [RedisEndpoint] { lock.withLock { replicas[master] ?? [] } }

    // MARK: Topology

    /// Asks the known nodes, then the seeds, for CLUSTER SLOTS, unless a refresh finished after
    /// `olderThan` (many threads that saw the same redirect refresh once).
    func refresh(olderThan: Date) throws {
        try refreshLock.withLock {
            guard lock.withLock({ refreshedAt }) < olderThan else { return }
            var problems: [String] = []
            var candidates = nodes
            for seed in url.seeds where !candidates.contains(seed) { candidates.append(seed) }
            for endpoint in candidates {
                do {
                    let reply = try withConnection(endpoint) { try $0.send([RedisCommand("CLUSTER", "SLOTS")])[0] }
                    if let message = reply.errorMessage {
                        if message.contains("cluster support disabled") {
                            throw StoreErrorText("\(endpoint) is a Redis server without cluster support; the store needs Redis Cluster (cluster-enabled yes)")
                        }
                        problems.append("\(endpoint): \(message)")
                        continue
                    }
                    guard reply.elements?.isEmpty == false else {
                        problems.append("\(endpoint): serves no slots (CLUSTER SLOTS is empty)")
                        continue
                    }
                    try apply(slots: reply, from: endpoint)
                    return
                } catch let error as RedisAuthError {
                    throw error
                } catch let error as RedisIOError {
                    problems.append(error.description)
                }
            }
            throw RedisIOError(endpoint: url.seeds[0], message: "no node of the cluster answered CLUSTER SLOTS (\(problems.joined(separator: "; ")))")
        }
    }

    private func apply(slots reply: RedisReply, from endpoint: RedisEndpoint) throws {
        var owners = [RedisEndpoint?](repeating: nil, count: HashSlot.count)
        var replicas: [RedisEndpoint: [RedisEndpoint]] = [:]
        for range in reply.elements ?? [] {
            guard let parts = range.elements, parts.count >= 3, let first = parts[0].integer, let last = parts[1].integer,
                  0 <= first, first <= last, last < HashSlot.count, let master = Self.node(parts[2], default: endpoint) else {
                throw StoreErrorText("\(endpoint) answered CLUSTER SLOTS with an entry that is not [first, last, master, replicas...]")
            }
            for slot in Int(first)...Int(last) { owners[slot] = master }
            replicas[master, default: []] += parts.dropFirst(3).compactMap { Self.node($0, default: endpoint) }
        }
        // Each master's own count of connected replicas: CLUSTER SLOTS is gossip and may not
        // list a replica yet (or still list a dead one).
        var connected: [RedisEndpoint: Int] = [:]
        for master in Set(owners.compactMap { $0 }) {
            let role = try? withConnection(master) { try $0.send([RedisCommand("ROLE")])[0] }
            if let parts = role?.elements, parts.count >= 3, parts[0].text == "master", let list = parts[2].elements {
                connected[master] = list.count
            } else {
                connected[master] = replicas[master]?.count ?? 0
            }
        }
        lock.withLock {
            self.owners = owners
            self.replicas = replicas.mapValues { Array(Set($0)) }
            connectedReplicas = connected
            refreshedAt = Date()
        }
    }

    /// [host, port, id, ...]; an empty host means the node that answered.
    private static func node(_ reply: RedisReply, default endpoint: RedisEndpoint) -> RedisEndpoint? {
        guard let parts = reply.elements, parts.count >= 2, let host = parts[0].text, let port = parts[1].integer else { return nil }
        return RedisEndpoint(host: host.isEmpty || host == "?" ? endpoint.host : host, port: Int(port))
    }

    /// How many replicas a write to `master` waits for: what the URL asks, at most how many the
    /// master has connected.
    private func waitCount(_ master: RedisEndpoint) -> Int {
        lock.withLock { min(url.waitReplicas, connectedReplicas[master] ?? 0) }
    }

    // MARK: Connections

    func withConnection<T>(_ endpoint: RedisEndpoint, _ body: (RedisConnection) throws -> T) throws -> T {
        let pooled = lock.withLock { idle[endpoint]?.popLast() }
        let connection = try pooled ?? RedisConnection(endpoint: endpoint, timeout: max(url.timeout, Double(url.waitTimeoutMs) / 1000 + 1),
                                                       username: url.username, password: url.password)
        defer {
            if !connection.isBroken {
                lock.withLock { if idle[endpoint, default: []].count < 32 { idle[endpoint, default: []].append(connection) } }
            }
        }
        return try body(connection)
    }

    // MARK: Commands

    /// One command on the node serving `slot`; with `replicate`, acknowledged by replicas (WAIT).
    public func execute(_ command: RedisCommand, slot: Int, replicate: Bool = false) throws -> RedisReply {
        try pipeline([(slot, command)], replicate: replicate)[0]
    }

    /// Sends each command to the node serving its slot, pipelined per node, the nodes in parallel;
    /// replies in the order of `items`. Follows MOVED and ASK, and retries across a failover
    /// (broken connections, CLUSTERDOWN, TRYAGAIN, LOADING, READONLY) until `failoverTimeout`.
    /// With `replicate`, each node's batch ends with WAIT, and a batch that too few replicas
    /// acknowledged is sent again. A Redis error that is none of these is returned as `.error`.
    public func pipeline(_ items: [(slot: Int, command: RedisCommand)], replicate: Bool) throws -> [RedisReply] {
        var replies = [RedisReply?](repeating: nil, count: items.count)
        var pending = items.indices.map { (index: $0, ask: RedisEndpoint?.none) }
        let deadline = Date().addingTimeInterval(url.failoverTimeout)
        var attempt = 0
        if lock.withLock({ Date().timeIntervalSince(refreshedAt) }) > Self.topologyMaxAge {
            try? refresh(olderThan: Date().addingTimeInterval(-Self.topologyMaxAge))
        }
        while !pending.isEmpty {
            var groups: [RedisEndpoint: [(index: Int, asking: Bool)]] = [:]
            var unserved: [Int] = []
            for p in pending {
                if let target = p.ask ?? owner(of: items[p.index].slot) {
                    groups[target, default: []].append((p.index, p.ask != nil))
                } else {
                    unserved.append(p.index)
                }
            }
            let startedAt = Date()
            let outcomes = run(groups: groups, items: items, replicate: replicate)
            pending = unserved.map { ($0, nil) }
            var retryReason = unserved.isEmpty ? nil : "slot \(items[unserved[0]].slot) is served by no node"
            for (index, outcome) in outcomes {
                switch outcome {
                case let .done(reply): replies[index] = reply
                case let .moved(slot, to):
                    lock.withLock { owners[slot] = to; counts.moved += 1 }
                    pending.append((index, nil))
                case let .ask(to):
                    lock.withLock { counts.ask += 1 }
                    pending.append((index, to))
                case let .retry(reason):
                    lock.withLock { counts.retries += 1 }
                    pending.append((index, nil))
                    retryReason = reason
                case let .failed(error):
                    throw error
                }
            }
            guard !pending.isEmpty else { break }
            guard Date() < deadline else {
                throw StoreErrorText("the cluster did not serve \(items[pending[0].index].command) within \(Int(url.failoverTimeout)) s: "
                                     + (retryReason ?? "its nodes kept redirecting it (MOVED/ASK)"))
            }
            attempt += 1
            if retryReason != nil {
                // The cluster is changing: wait a little, learn the new slot map, try again.
                Thread.sleep(forTimeInterval: min(0.05 * Double(1 << min(attempt, 4)), 0.5))
                try? refresh(olderThan: startedAt)
            } else {
                // Redirected: try at once; a slot that moved means others likely did too; a
                // redirect that keeps coming back (a cluster in the middle of changing) slows down.
                if attempt > 8 { Thread.sleep(forTimeInterval: 0.05) }
                if outcomes.contains(where: { if case .moved = $0.1 { return true } else { return false } }) { try? refresh(olderThan: startedAt) }
            }
        }
        return replies.map { $0! }
    }

    /// Runs each node's batch (in parallel when several) and says how each command ended.
    private func run(groups: [RedisEndpoint: [(index: Int, asking: Bool)]], items: [(slot: Int, command: RedisCommand)],
                     replicate: Bool) -> [(Int, Outcome)] {
        let batches = Array(groups)
        var results = [[(Int, Outcome)]](repeating: [], count: batches.count)
        let body = { (b: Int) in
            let (endpoint, members) = batches[b]
            let outcome = self.runBatch(endpoint, members.map { ($0.asking, items[$0.index].command) }, replicate: replicate)
            let merged = zip(members, outcome).map { ($0.index, $1) }
            self.lock.withLock { results[b] = merged }
        }
        if batches.count == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: batches.count, execute: body) }
        return results.flatMap { $0 }
    }

    /// One node's commands in windows of at most 1,000 commands or 8 MiB, then WAIT.
    private func runBatch(_ endpoint: RedisEndpoint, _ commands: [(asking: Bool, command: RedisCommand)], replicate: Bool) -> [Outcome] {
        do {
            return try withConnection(endpoint) { connection in
                var outcomes: [Outcome] = []
                var start = 0
                while start < commands.count {
                    var end = start, bytes = 0
                    while end < commands.count, end - start < 1000, bytes < 8 << 20 { bytes += commands[end].command.byteCount; end += 1 }
                    let window = commands[start..<end]
                    let wire = window.flatMap { $0.asking ? [RedisCommand("ASKING"), $0.command] : [$0.command] }
                    let replies = try connection.send(wire)
                    var r = 0
                    for entry in window {
                        if entry.asking { r += 1 }  // ASKING's +OK
                        outcomes.append(Self.classify(replies[r], from: endpoint))
                        r += 1
                    }
                    start = end
                }
                let needed = replicate ? waitCount(endpoint) : 0
                if needed > 0, outcomes.contains(where: { if case .done = $0 { return true } else { return false } }) {
                    let acknowledged = try connection.send([RedisCommand("WAIT", needed, url.waitTimeoutMs)])[0].integer ?? 0
                    if acknowledged < needed {
                        let reason = "\(endpoint): \(acknowledged) of \(needed) replicas acknowledged the write within \(url.waitTimeoutMs) ms"
                        return outcomes.map { if case .done = $0 { return .retry(reason) } else { return $0 } }
                    }
                }
                return outcomes
            }
        } catch let error as RedisAuthError {
            return commands.map { _ in .failed(error) }
        } catch {
            return commands.map { _ in .retry("\(error)") }
        }
    }

    private static func classify(_ reply: RedisReply, from endpoint: RedisEndpoint) -> Outcome {
        guard let message = reply.errorMessage else { return .done(reply) }
        let words = message.split(separator: " ")
        switch words.first {
        case "MOVED", "ASK":
            guard words.count == 3, let slot = Int(words[1]), (0..<HashSlot.count).contains(slot), let colon = words[2].lastIndex(of: ":"),
                  let port = Int(words[2][words[2].index(after: colon)...]) else { return .done(reply) }
            let host = String(words[2][..<colon])
            let target = RedisEndpoint(host: host.isEmpty ? endpoint.host : host, port: port)
            return words[0] == "MOVED" ? .moved(slot: slot, to: target) : .ask(target)
        case "TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN", "READONLY":
            return .retry("\(endpoint): \(message)")
        default:
            return .done(reply)
        }
    }

    // MARK: Every node

    /// One command to one node, no routing (SCAN, INFO, CONFIG GET); connection errors throw.
    public func direct(_ command: RedisCommand, to endpoint: RedisEndpoint) throws -> RedisReply {
        try withConnection(endpoint) { try $0.send([command])[0] }
    }

    /// Every key matching `pattern` on every master, deduplicated, in no particular order. A
    /// node that fails during the walk (failover) makes the walk start again on the new masters.
    public func scanKeys(matching pattern: String) throws -> [[UInt8]] {
        let deadline = Date().addingTimeInterval(url.failoverTimeout)
        var attempt = 0
        while true {
            let startedAt = Date()
            do {
                try refresh(olderThan: startedAt)
                guard lock.withLock({ owners.allSatisfy { $0 != nil } }) else { throw StoreErrorText("not every slot is served") }
                var keys = Set<[UInt8]>()
                for master in masters {
                    var cursor = "0"
                    repeat {
                        let reply = try direct(RedisCommand("SCAN", cursor, "MATCH", pattern, "COUNT", 1000), to: master)
                        guard let parts = reply.elements, parts.count == 2, let next = parts[0].text, let found = parts[1].elements else {
                            throw StoreErrorText("\(master): SCAN answered \(reply.errorMessage ?? "something that is not [cursor, keys]")")
                        }
                        for key in found { if let k = key.bytes { keys.insert(k) } }
                        cursor = next
                    } while cursor != "0"
                }
                return Array(keys)
            } catch let error as RedisAuthError {
                throw error
            } catch {
                guard Date() < deadline else { throw StoreErrorText("walking the keys \(pattern) failed for \(Int(url.failoverTimeout)) s: \(error)") }
                attempt += 1
                Thread.sleep(forTimeInterval: min(0.05 * Double(1 << min(attempt, 4)), 0.5))
            }
        }
    }
}

/// A problem the router or store found, as text; `RedisStore` turns it into a `StoreError`.
struct StoreErrorText: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
