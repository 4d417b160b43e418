import Foundation
import Testing
@testable import VoCoStoreRedis

/// Our slot computation against Redis's own (CLUSTER KEYSLOT): the committed fixture, and, with
/// a cluster, random binary keys asked live.
@Suite struct HashSlotTests {
    @Test func crc16IsXmodem() {
        #expect(HashSlot.crc16(Array("123456789".utf8)) == 0x31C3)  // the check value Redis's cluster spec gives
        #expect(HashSlot.crc16([]) == 0)
    }

    @Test func slotsEqualRedisForTheFixtureKeys() throws {
        let path = repositoryRoot + "/Tests/VoCoStoreRedisTests/Fixtures/keyslots.tsv"
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(lines.count == 100)
        for line in lines {
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
            let key = String(parts[0]), slot = Int(parts[1])
            #expect(HashSlot.of(key) == slot, "key '\(key)'")
        }
    }

    @Test func hashTagsFollowTheFirstBraces() {
        #expect(HashSlot.of("{user1000}.following") == HashSlot.of("user1000"))
        #expect(HashSlot.of("foo{bar}{zap}") == HashSlot.of("bar"))
        #expect(HashSlot.of("foo{}{bar}") == HashSlot.of("foo{}{bar}"))  // empty tag: the whole key
        #expect(HashSlot.of("foo{{bar}}zap") == HashSlot.of("{bar"))
        let keys = RedisKeys(name: "s")
        #expect(HashSlot.of(keys.members("a b")) == HashSlot.of(keys.collectionName("a b")))
        #expect(HashSlot.of(keys.jobStream) == HashSlot.of(keys.job("1-0")))
        #expect(HashSlot.of(keys.jobStream) == HashSlot.of(keys.collectionJobs("x")))
    }

    @Test func slotsEqualClusterKeyslotForRandomBinaryKeys() throws {
        let seeds = try requireCluster()
        let router = try ClusterRouter(url: RedisStoreURL("redis://\(seeds)"))
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = Array("ab{}:".utf8) + [0, 255, 10, 13]
        let keys: [[UInt8]] = (0..<400).map { n in
            let length = Int.random(in: 0...24, using: &generator)
            return (0..<length).map { _ in n % 2 == 0 ? alphabet.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator) }
        }
        let master = router.masters[0]
        for key in keys {
            let reply = try router.direct(RedisCommand([Array("CLUSTER".utf8), Array("KEYSLOT".utf8), key]), to: master)
            #expect(reply.integer == Int64(HashSlot.of(key)), "key \(key)")
        }
    }
}
