import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreRedis

/// ASK and MOVED from a real slot migration on the cluster: the router follows both, and learns
/// the new owner from MOVED. The migrated slot stays on its new master (harmless to others: their
/// commands follow the same redirects).
@Suite struct RedirectTests {
    @Test func theRouterFollowsAskDuringAMigrationAndMovedAfterIt() throws {
        let seeds = try requireCluster()
        let router = try ClusterRouter(url: RedisStoreURL("redis://\(seeds)"))
        let tag = "{redirect-\(UUID().uuidString)}"
        let slot = HashSlot.of(tag)
        let source = try #require(router.owner(of: slot))
        let target = try #require(router.masters.first { $0 != source })
        func admin(_ node: RedisEndpoint, _ args: [RedisArgument]) throws -> RedisReply {
            let reply = try router.direct(RedisCommand(args.map(\.redisBytes)), to: node)
            if let message = reply.errorMessage { throw ProcessFailure("\(node) \(args.map { String(decoding: $0.redisBytes, as: UTF8.self) }): \(message)") }
            return reply
        }
        let sourceID = try #require(try admin(source, ["CLUSTER", "MYID"]).text)
        let targetID = try #require(try admin(target, ["CLUSTER", "MYID"]).text)
        let old = "\(tag):old", new = "\(tag):new"
        #expect(try router.execute(RedisCommand("SET", old, "before"), slot: slot, replicate: true) == .status("OK"))

        // Migrating: the source still serves the keys it has and sends the others to the target with ASK.
        _ = try admin(target, ["CLUSTER", "SETSLOT", slot, "IMPORTING", sourceID])
        _ = try admin(source, ["CLUSTER", "SETSLOT", slot, "MIGRATING", targetID])
        let before = router.redirects
        #expect(try router.execute(RedisCommand("SET", new, "during"), slot: slot, replicate: true) == .status("OK"))
        #expect(try router.execute(RedisCommand("GET", new), slot: slot) == .string(Array("during".utf8)))
        #expect(try router.execute(RedisCommand("GET", old), slot: slot) == .string(Array("before".utf8)))
        #expect(router.redirects.ask == before.ask + 2 && router.redirects.moved == before.moved)
        #expect(router.owner(of: slot) == source)  // ASK teaches nothing about the owner

        // Finish as redis-cli does: move what the source still holds, then give the slot to the target.
        while let keys = try admin(source, ["CLUSTER", "GETKEYSINSLOT", slot, 100]).elements, !keys.isEmpty {
            _ = try admin(source, ["MIGRATE", target.host, target.port, "", 0, 5000, "KEYS"] + keys.compactMap { $0.bytes as RedisArgument? })
        }
        _ = try admin(target, ["CLUSTER", "SETSLOT", slot, "NODE", targetID])
        _ = try admin(source, ["CLUSTER", "SETSLOT", slot, "NODE", targetID])
        for master in router.masters where master != source && master != target {
            _ = try admin(master, ["CLUSTER", "SETSLOT", slot, "NODE", targetID])
        }

        // The router still thinks the source owns the slot: MOVED sends it to the target, once.
        #expect(try router.execute(RedisCommand("GET", old), slot: slot) == .string(Array("before".utf8)))
        #expect(router.redirects.moved == before.moved + 1)
        #expect(router.owner(of: slot) == target)
        #expect(try router.execute(RedisCommand("GET", new), slot: slot) == .string(Array("during".utf8)))
        #expect(router.redirects.moved == before.moved + 1)
        _ = try router.execute(RedisCommand("DEL", old, new), slot: slot, replicate: true)
    }
}
