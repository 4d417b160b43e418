import Foundation
import Testing
@testable import VoCoTokenizer

// MARK: - A small LLaMA-style tokenizer.json built in memory

/// <unk> <s> </s>, the 256 byte tokens, then a few pieces; legacy Llama-2 components.
func smallTokenizerJSON() -> [String: Any] {
    var vocab: [String: Int] = ["<unk>": 0, "<s>": 1, "</s>": 2]
    for b in 0..<256 { vocab[String(format: "<0x%02X>", b)] = 3 + b }
    for t in ["▁", "a", "b", "c", "ab", "▁a", "▁ab", "bc"] { vocab[t] = vocab.count }
    func special(_ id: Int, _ content: String) -> [String: Any] {
        ["id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true]
    }
    return [
        "version": "1.0", "truncation": NSNull(), "padding": NSNull(),
        "added_tokens": [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
        "normalizer": ["type": "Sequence", "normalizers": [
            ["type": "Prepend", "prepend": "▁"],
            ["type": "Replace", "pattern": ["String": " "], "content": "▁"],
        ]],
        "pre_tokenizer": NSNull(),
        "post_processor": [
            "type": "TemplateProcessing",
            "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
            "pair": [["Sequence": ["id": "A", "type_id": 0]], ["Sequence": ["id": "B", "type_id": 1]]],
            "special_tokens": ["<s>": ["id": "<s>", "ids": [1], "tokens": ["<s>"]]],
        ],
        "decoder": ["type": "Sequence", "decoders": [
            ["type": "Replace", "pattern": ["String": "▁"], "content": " "],
            ["type": "ByteFallback"], ["type": "Fuse"],
            ["type": "Strip", "content": " ", "start": 1, "stop": 0],
        ]],
        "model": [
            "type": "BPE", "dropout": NSNull(), "unk_token": "<unk>", "continuing_subword_prefix": NSNull(),
            "end_of_word_suffix": NSNull(), "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": ["a b", "▁ a", "▁a b", "b c"],
        ],
    ]
}

func smallTokenizer(_ edit: (inout [String: Any]) -> Void = { _ in }) throws -> Tokenizer {
    var json = smallTokenizerJSON()
    edit(&json)
    var data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    // model.vocab_pairs [[token, id]...] becomes a "vocab" object written key by key, so that keys
    // a Swift dictionary would merge ("é", "e\u{301}") reach the parser as they are.
    if var model = json["model"] as? [String: Any], let pairs = model["vocab_pairs"] as? [[Any]] {
        model["vocab_pairs"] = nil
        model["vocab"] = "VOCAB"
        json["model"] = model
        let members = try pairs.map { pair -> String in
            let key = String(decoding: try JSONSerialization.data(withJSONObject: [pair[0]]).dropFirst().dropLast(), as: UTF8.self)
            return "\(key):\(pair[1])"
        }
        let text = String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self)
        data = Data(text.replacingOccurrences(of: "\"VOCAB\"", with: "{" + members.joined(separator: ",") + "}").utf8)
    }
    return try Tokenizer(tokenizerJSON: data, path: "small/tokenizer.json")
}

func editModel(_ json: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
    var model = json["model"] as? [String: Any] ?? [:]
    edit(&model)
    json["model"] = model
}

/// The error a load throws, or nil.
func loadError(_ edit: (inout [String: Any]) -> Void) -> TokenizerError? {
    do { _ = try smallTokenizer(edit); return nil } catch { return error as? TokenizerError }
}

// MARK: - Behaviour

@Suite struct TokenizerBehaviourTests {
    @Test func mergesApplyLowestRankFirst() throws {
        let t = try smallTokenizer()
        let id = { (s: String) in t.tokenToId(s)! }
        // "▁ab": (a, b) has rank 0 and wins over (▁, a), so "▁a b" can never apply.
        #expect(t.encode("ab") == [1, id("▁"), id("ab")])
        #expect(t.encode("abc", addSpecialTokens: false) == [id("▁"), id("ab"), id("c")])
        #expect(t.encode("a", addSpecialTokens: false) == [id("▁a")])
        #expect(t.encode("bc", addSpecialTokens: false) == [id("▁"), id("bc")])
    }

    @Test func duplicateMergeKeepsItsLastRank() throws {
        // ("a", "b") repeated after ("b", "c") now ranks below it: "abc" -> a, bc (checked with tokenizers).
        let t = try smallTokenizer { json in editModel(&json) { $0["merges"] = ["a b", "b c", "a b"] } }
        let id = { (s: String) in t.tokenToId(s)! }
        #expect(t.encode("abc", addSpecialTokens: false) == [id("▁"), id("a"), id("bc")])
    }

    @Test func pairMergesReadLikeStrings() throws {
        let strings = try smallTokenizer()
        let pairs = try smallTokenizer { json in
            editModel(&json) { $0["merges"] = [["a", "b"], ["▁", "a"], ["▁a", "b"], ["b", "c"]] }
        }
        for text in ["ab", "abc a bc", " cab "] { #expect(strings.encode(text) == pairs.encode(text)) }
    }

    @Test func unknownCharactersFallBackToBytes() throws {
        let t = try smallTokenizer()
        // "é" is C3 A9; "😀" is F0 9F 98 80.
        #expect(t.encode("é", addSpecialTokens: false) == [t.tokenToId("▁")!, 3 + 0xC3, 3 + 0xA9])
        #expect(t.decode(t.encode("a😀 é")) == "<s> a😀 é")
        #expect(t.decode(t.encode("a😀 é"), skipSpecialTokens: true) == "a😀 é")
    }

    @Test func withoutByteFallbackUnknownsFuseIntoOneUnk() throws {
        let fused = try smallTokenizer { json in editModel(&json) { $0["byte_fallback"] = false } }
        #expect(fused.encode("aéé", addSpecialTokens: false) == [fused.tokenToId("▁a")!, 0])
        let separate = try smallTokenizer { json in editModel(&json) { $0["byte_fallback"] = false; $0["fuse_unk"] = false } }
        #expect(separate.encode("aéé", addSpecialTokens: false) == [separate.tokenToId("▁a")!, 0, 0])
    }

    @Test func specialTokensSplitTheTextAndEachStretchGetsItsOwnPrefix() throws {
        let t = try smallTokenizer()
        let id = { (s: String) in t.tokenToId(s)! }
        // Prepend("▁") applies to "a" and to "b" separately.
        #expect(t.encode("a</s>b", addSpecialTokens: false) == [id("▁a"), 2, id("▁"), id("b")])
        #expect(t.encode("", addSpecialTokens: true) == [1])
        #expect(t.encode("", addSpecialTokens: false) == [])
    }

    @Test func withoutPostProcessorNothingIsAdded() throws {
        let t = try smallTokenizer { $0["post_processor"] = NSNull() }
        #expect(t.encode("ab") == t.encode("ab", addSpecialTokens: false))
    }

    @Test func withoutDecoderTokensAreJoinedWithSpaces() throws {
        let t = try smallTokenizer { $0["decoder"] = NSNull() }
        #expect(t.decode(t.encode("ab")) == "<s> ▁ ab")
    }

    @Test func addedTokensGetTokenizersIds() throws {
        let t = try smallTokenizer { json in
            var added = json["added_tokens"] as? [[String: Any]] ?? []
            // Ids written in the file are not used: a new token gets the next free id.
            added.append(["id": 999, "content": "<image>", "special": true, "normalized": false])
            added.append(["id": 5, "content": "<voco>", "special": true, "normalized": false])
            added.append(["id": 7, "content": "ab", "special": false, "normalized": true])
            json["added_tokens"] = added
        }
        let vocabCount = 3 + 256 + 8
        #expect(t.tokenToId("<image>") == vocabCount)
        #expect(t.tokenToId("<voco>") == vocabCount + 1)
        #expect(t.tokenToId("ab") == 3 + 256 + 4) // already in the vocabulary
        #expect(t.vocabularySize == vocabCount + 2)
        #expect(t.isSpecial(vocabCount) && !t.isSpecial(t.tokenToId("ab")!))
        #expect(t.encode("<image>a<voco>", addSpecialTokens: false) == [vocabCount, t.tokenToId("▁a")!, vocabCount + 1])
        #expect(t.decode([vocabCount, 1, t.tokenToId("▁a")!], skipSpecialTokens: true) == "a")
    }

    @Test func canonicallyEquivalentTokensStayDistinct() throws {
        // Swift's String == says "é" == "e\u{301}"; tokenizers compares bytes. Both tokens must survive.
        let t = try smallTokenizer { json in
            json["added_tokens"] = [] as [Any]
            editModel(&json) { model in
                var vocab = model["vocab"] as? [String: Int] ?? [:]
                let n = vocab.count
                model["vocab"] = nil
                model["merges"] = ["e \u{301}"]
                // Keys as written: a Swift dictionary cannot hold both, so build the JSON text.
                vocab["e"] = n; vocab["\u{301}"] = n + 1
                model["vocab_pairs"] = vocab.map { [$0.key, $0.value] } + [["e\u{301}", n + 2], ["\u{e9}", n + 3]]
            }
        }
        let decomposed = t.tokenToId("e\u{301}"), composed = t.tokenToId("\u{e9}")
        #expect(decomposed != nil && composed != nil && decomposed != composed)
        #expect(t.encode("e\u{301}", addSpecialTokens: false) == [t.tokenToId("▁")!, decomposed!])
        #expect(t.encode("\u{e9}", addSpecialTokens: false) == [t.tokenToId("▁")!, composed!])
        #expect(t.decode([decomposed!]).unicodeScalars.elementsEqual("e\u{301}".unicodeScalars))
    }

    @Test func idsOutsideTheVocabularyDecodeToNothing() throws {
        let t = try smallTokenizer()
        #expect(t.decode([-1, 100_000, t.tokenToId("▁a")!]) == "a")
        #expect(t.idToToken(-5) == nil)
    }

    @Test func readsTokenizerConfig() throws {
        let dir = fixturesDirectory.appendingPathComponent("llama2-legacy").path
        let t = try Tokenizer(directory: dir)
        #expect(t.config.bosToken == "<s>" && t.config.eosToken == "</s>")
        #expect(t.bosTokenId == 1 && t.eosTokenId == 2)
        #expect(t.config.addBosToken == true && t.config.addEosToken == false)
        #expect(t.config.modelMaxLength == 4096)
    }

    @Test func longTextIsOneWordAndStillRoundTrips() throws {
        // Legacy files have no pre-tokenizer: the whole text goes through BPE at once.
        let t = try Tokenizer(directory: fixturesDirectory.appendingPathComponent("llama2-legacy").path)
        let text = String(repeating: "The model reads 日本語 and émojis 🚀 too. ", count: 1500)
        let ids = t.encode(text, addSpecialTokens: false)
        #expect(ids.count > 10_000)
        #expect(t.decode(ids).utf8.elementsEqual(text.utf8))
    }
}

// MARK: - Streaming

@Suite struct StreamingDecoderTests {
    @Test func holdsBackACharacterSpelledByByteTokens() throws {
        let t = try smallTokenizer()
        let emoji = [0xF0, 0x9F, 0x98, 0x80].map { 3 + $0 }
        var s = t.streamingDecoder()
        #expect(s.push(t.tokenToId("▁a")!) == "a")
        for id in emoji { #expect(s.push(id) == "") }
        #expect(s.push(t.tokenToId("▁")!) == "😀 ")
        #expect(s.push(t.tokenToId("b")!) == "b")
        #expect(s.finish() == "")
    }

    @Test func finishReleasesAnUnfinishedByteRun() throws {
        let t = try smallTokenizer()
        let ids = [t.tokenToId("▁a")!, 3 + 0xF0, 3 + 0x9F]
        var s = t.streamingDecoder()
        let streamed = ids.map { s.push($0) }.joined() + s.finish()
        #expect(streamed == "a\u{FFFD}\u{FFFD}")
        #expect(streamed == t.decode(ids))
    }

    @Test func aSkippedSpecialTokenDoesNotEndAByteRun() throws {
        // With <s> skipped, C3 </s> A9 decodes as "é": the stream must not emit C3 alone.
        let t = try smallTokenizer()
        let ids = [3 + 0xC3, 1, 3 + 0xA9, t.tokenToId("▁a")!]
        var s = t.streamingDecoder(skipSpecialTokens: true)
        #expect(ids.map { s.push($0) }.joined() + s.finish() == "é a")
        #expect(t.decode(ids, skipSpecialTokens: true) == "é a")
    }

    @Test func concatenationEqualsFullDecodeForRandomIds() throws {
        let t = try Tokenizer(directory: fixturesDirectory.appendingPathComponent("metaspace-first").path)
        var state: UInt64 = 12345
        for _ in 0..<300 {
            var ids: [Int] = []
            for _ in 0..<40 {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let r = Int(state >> 33)
                ids.append(r % 4 == 0 ? 3 + 0x80 + r % 64 : r % 4 == 1 ? 3 + 0xE0 + r % 16 : r % 10_000)
            }
            for skip in [false, true] {
                var s = t.streamingDecoder(skipSpecialTokens: skip)
                let streamed = ids.map { s.push($0) }.joined() + s.finish()
                #expect(streamed.utf8.elementsEqual(t.decode(ids, skipSpecialTokens: skip).utf8))
            }
        }
    }
}
