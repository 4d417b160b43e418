import Foundation
import Testing
import VoCoStore
@testable import VoCoStoreRedis

@Suite struct RedisStoreURLTests {
    @Test func theFullFormParses() throws {
        let url = try RedisStoreURL("redis://alice:p%40ss:w@h1.example:7000,[::1]:7001,10.0.0.3:7002/photos?wait=2&wait-timeout=500&timeout=1.5&failover-timeout=10&durability=relaxed&tls=no")
        #expect(url.seeds == [RedisEndpoint(host: "h1.example", port: 7000), RedisEndpoint(host: "::1", port: 7001), RedisEndpoint(host: "10.0.0.3", port: 7002)])
        #expect(url.name == "photos" && url.username == "alice" && url.password == "p@ss:w")
        #expect(url.waitReplicas == 2 && url.waitTimeoutMs == 500 && url.timeout == 1.5 && url.failoverTimeout == 10 && !url.strictDurability)
        // How the store is named in messages: never the password.
        #expect(url.description == "redis://alice@h1.example:7000,[::1]:7001,10.0.0.3:7002/photos")
    }

    @Test func defaultsAndThePasswordOptions() throws {
        let url = try RedisStoreURL("REDIS://127.0.0.1:7000")
        #expect(url.name == "voco" && url.password == nil && url.username == nil && url.waitReplicas == 1 && url.strictDurability)
        #expect(url.description == "redis://127.0.0.1:7000")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("voco-pw-\(UUID().uuidString)").path
        try "s3cret\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fromFile = try RedisStoreURL("redis://h:1/x?user=bob&password-file=\(file)")
        #expect(fromFile.password == "s3cret" && fromFile.username == "bob")
        #expect(try RedisStoreURL("redis://h:1?password=a%26b").password == "a&b")
        #expect(RedisStoreURL.isRedis("redis://x:1") && !RedisStoreURL.isRedis("/var/voco/store") && !RedisStoreURL.isRedis("redisdir"))
    }

    @Test(arguments: [
        ("redis://host", "no :port"), ("redis://host:0", "not a port"), ("redis://host:70000", "not a port"),
        ("redis://:7000", "no host"), ("redis://h:1,", "no :port"), ("redis://h:1/a:b", "store name"),
        ("redis://h:1/\(String(repeating: "n", count: 65))", "store name"), ("redis://h:1?color=red", "unknown option 'color'"),
        ("redis://h:1?wait=-1", "wait=-1"), ("redis://h:1?wait=1e99", "wait=1e99"), ("redis://h:1?timeout=nan", "timeout=nan"),
        ("redis://h:1?durability=maybe", "durability=maybe"), ("redis://h:1?tls=yes", "hiredis 0.14"),
        ("redis://h:1?password-file=/no/such/file", "cannot read the password file"), ("http://h:1", "redis://"),
    ])
    func badURLsAreRefusedByName(_ text: String, _ expected: String) {
        #expect { _ = try RedisStoreURL(text) } throws: { error in
            guard case let .invalidArgument(message) = error as? StoreError else { return false }
            return message.contains(expected) && message.contains("form: redis://")
        }
    }

    @Test func passwordsNeverAppearInMessages() {
        #expect(RedisStoreURL.redacted("redis://u:topsecret@h:1/x?password=other&wait=2") == "redis://u:***@h:1/x?password=***&wait=2")
        #expect { _ = try RedisStoreURL("redis://u:topsecret@h:1?bogus=1") } throws: { !"\($0)".contains("topsecret") }
    }
}
