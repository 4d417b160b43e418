import Foundation
import Testing
@testable import VoCoTokenizer

// Every directory under Fixtures/ with a tokenizer.json and a cases.json is a fixture set made by
// Tools/fixtures/make_tokenizer_fixtures.py from the Python `tokenizers` library: adding a set is
// just dropping its files there.

let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

struct FixtureFile: Decodable {
    struct Case: Decodable {
        let text: String
        let ids: [Int]
        let ids_no_special: [Int]
        let decode: String
        let decode_skip: String
    }
    struct DecodeCase: Decodable {
        let ids: [Int]
        let decode: String
        let decode_skip: String
    }
    let tokenizers_version: String
    let cases: [Case]
    let decode_cases: [DecodeCase]?
}

func fixtureSetNames() -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: fixturesDirectory.path)) ?? []
    return names.filter { name in
        let dir = fixturesDirectory.appendingPathComponent(name)
        return FileManager.default.fileExists(atPath: dir.appendingPathComponent("tokenizer.json").path)
            && FileManager.default.fileExists(atPath: dir.appendingPathComponent("cases.json").path)
    }.sorted()
}

func loadFixture(_ name: String) throws -> (Tokenizer, FixtureFile) {
    let dir = fixturesDirectory.appendingPathComponent(name)
    let tokenizer = try Tokenizer(directory: dir.path)
    let data = try Data(contentsOf: dir.appendingPathComponent("cases.json"))
    return (tokenizer, try JSONDecoder().decode(FixtureFile.self, from: data))
}

/// Records at most a few mismatches in full, then counts the rest.
struct MismatchLog {
    let set: String
    var count = 0

    mutating func check(_ what: String, _ input: String, _ actual: [Int], _ expected: [Int]) {
        report(what, input, actual, expected, equal: actual == expected)
    }

    /// Texts are compared byte by byte: Swift's == would take "é" and "e\u{301}" as equal.
    mutating func check(_ what: String, _ input: String, _ actual: String, _ expected: String) {
        report(what, input, actual.debugDescription, expected.debugDescription, equal: actual.utf8.elementsEqual(expected.utf8))
    }

    private mutating func report<T>(_ what: String, _ input: String, _ actual: T, _ expected: T, equal: Bool) {
        guard !equal else { return }
        count += 1
        if count <= 8 {
            Issue.record("[\(set)] \(what) of \(input.debugDescription.prefix(120)): got \(String(describing: actual).prefix(300)), tokenizers gives \(String(describing: expected).prefix(300))")
        }
    }
}

@Suite struct FixtureTests {
    @Test func fixtureSetsExist() {
        #expect(fixtureSetNames().count >= 2, "expected the fixture sets in \(fixturesDirectory.path)")
    }

    @Test(arguments: fixtureSetNames())
    func encodesLikeTokenizers(set: String) throws {
        let (tokenizer, fixture) = try loadFixture(set)
        #expect(fixture.cases.count >= 100)
        var log = MismatchLog(set: set)
        for c in fixture.cases {
            log.check("ids", c.text, tokenizer.encode(c.text), c.ids)
            log.check("ids without special tokens", c.text, tokenizer.encode(c.text, addSpecialTokens: false), c.ids_no_special)
        }
        #expect(log.count == 0, "\(log.count) of \(fixture.cases.count * 2) encodings differ")
    }

    @Test(arguments: fixtureSetNames())
    func decodesLikeTokenizers(set: String) throws {
        let (tokenizer, fixture) = try loadFixture(set)
        var log = MismatchLog(set: set)
        let all = fixture.cases.map { ($0.ids, $0.decode, $0.decode_skip) } + (fixture.decode_cases ?? []).map { ($0.ids, $0.decode, $0.decode_skip) }
        for (ids, decode, decodeSkip) in all {
            log.check("decode", "\(ids)", tokenizer.decode(ids), decode)
            log.check("decode skipping special tokens", "\(ids)", tokenizer.decode(ids, skipSpecialTokens: true), decodeSkip)
        }
        #expect(log.count == 0, "\(log.count) of \(all.count * 2) decodes differ")
    }

    @Test(arguments: fixtureSetNames())
    func roundTripsText(set: String) throws {
        // Wherever tokenizers gives the text back (the LLaMA sets: every string without special
        // tokens in it), so do we.
        let (tokenizer, fixture) = try loadFixture(set)
        var log = MismatchLog(set: set)
        for c in fixture.cases where c.decode_skip == c.text {
            log.check("round trip", c.text, tokenizer.decode(tokenizer.encode(c.text), skipSpecialTokens: true), c.text)
        }
        #expect(log.count == 0)
    }

    @Test(arguments: fixtureSetNames())
    func streamsLikeFullDecode(set: String) throws {
        let (tokenizer, fixture) = try loadFixture(set)
        var log = MismatchLog(set: set)
        let sequences = fixture.cases.map(\.ids) + (fixture.decode_cases ?? []).map(\.ids)
        for ids in sequences {
            for skip in [false, true] {
                var stream = tokenizer.streamingDecoder(skipSpecialTokens: skip)
                var text = ""
                for id in ids { text += stream.push(id) }
                text += stream.finish()
                log.check(skip ? "streamed decode skipping special tokens" : "streamed decode", "\(ids)", text, tokenizer.decode(ids, skipSpecialTokens: skip))
            }
        }
        #expect(log.count == 0)
    }
}
