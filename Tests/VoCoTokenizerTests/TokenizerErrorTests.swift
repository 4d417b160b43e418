import Foundation
import Testing
@testable import VoCoTokenizer

@Suite struct TokenizerErrorTests {
    @Test func unsupportedComponentsAreNamed() {
        let cases: [(String, Any, String)] = [
            ("normalizer", ["type": "NFKD"], "unsupported normalizer 'NFKD'"),
            ("normalizer", ["type": "Sequence", "normalizers": [["type": "Prepend", "prepend": "▁"], ["type": "Lowercase"]]],
             "unsupported normalizer 'Lowercase'"),
            ("pre_tokenizer", ["type": "Whitespace"], "unsupported pre-tokenizer 'Whitespace'"),
            ("post_processor", ["type": "BertProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1]], "unsupported post-processor 'BertProcessing'"),
            ("decoder", ["type": "Sequence", "decoders": [["type": "WordPiece", "prefix": "##"]]], "unsupported decoder 'WordPiece'"),
        ]
        for (key, component, message) in cases {
            let error = loadError { $0[key] = component }
            #expect(error?.description.hasPrefix(message) == true, "\(String(describing: error))")
            #expect(error?.description.contains("small/tokenizer.json") == true)
        }
        let model = loadError { json in editModel(&json) { $0["type"] = "Unigram" } }
        #expect(model?.description.hasPrefix("unsupported model 'Unigram'") == true)
    }

    @Test func unsupportedOptionsAreNamed() {
        let dropout = loadError { json in editModel(&json) { $0["dropout"] = 0.1 } }
        #expect(dropout?.description.contains("'model.dropout'") == true)
        #expect(loadError { json in editModel(&json) { $0["dropout"] = 0.0 } } == nil)
        let truncation = loadError { $0["truncation"] = ["max_length": 512, "strategy": "LongestFirst", "stride": 0, "direction": "Right"] }
        #expect(truncation?.description.contains("'truncation'") == true)
        let padding = loadError { $0["padding"] = ["strategy": "BatchLongest"] }
        #expect(padding?.description.contains("'padding'") == true)
        let version = loadError { $0["version"] = "2.0" }
        #expect(version?.description.contains("'version'") == true)
    }

    @Test func malformedJSONIsReported() {
        for text in ["{", "", "[1, 2]", "{\"model\": }"] {
            do {
                _ = try Tokenizer(tokenizerJSON: Data(text.utf8), path: "bad.json")
                Issue.record("\(text) loaded")
            } catch let error as TokenizerError {
                #expect(error.description.hasPrefix("bad.json"), "\(error)")
            } catch {
                Issue.record("unexpected error type \(error)")
            }
        }
    }

    @Test func mergesMustBelongToTheVocabulary() {
        let missingPart = loadError { json in editModel(&json) { $0["merges"] = ["a b", "a z"] } }
        #expect(missingPart == .mergeTokenMissing(path: "small/tokenizer.json", merge: 2, token: "z"))
        let missingResult = loadError { json in editModel(&json) { $0["merges"] = ["b a"] } }
        #expect(missingResult == .mergeTokenMissing(path: "small/tokenizer.json", merge: 1, token: "ba"))
        let threeParts = loadError { json in editModel(&json) { $0["merges"] = ["a b c"] } }
        #expect(threeParts?.description.contains("model.merges[0]") == true)
        let badPair = loadError { json in editModel(&json) { $0["merges"] = [["a"]] } }
        #expect(badPair?.description.contains("model.merges[0]") == true)
        // "#version" header lines of old merges files are skipped, as tokenizers does.
        #expect(loadError { json in editModel(&json) { $0["merges"] = ["#version: 0.2", "a b"] } } == nil)
    }

    @Test func referencedTokensMustExist() {
        let unk = loadError { json in editModel(&json) { $0["unk_token"] = "<oov>" } }
        #expect(unk == .unknownToken(path: "small/tokenizer.json", field: "model.unk_token", token: "<oov>"))
        let template = loadError { json in
            json["post_processor"] = ["type": "TemplateProcessing",
                                      "single": [["SpecialToken": ["id": "<bos>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                                      "special_tokens": [:] as [String: Any]]
        }
        #expect(template?.description.contains("'<bos>'") == true)
    }

    @Test func fieldsOfTheWrongTypeAreNamed() {
        let vocab = loadError { json in editModel(&json) { $0["vocab"] = ["a", "b"] } }
        #expect(vocab == .invalidField(path: "small/tokenizer.json", field: "model.vocab", problem: "expected an object, found an array"))
        let id = loadError { json in editModel(&json) { $0["vocab"] = ["a": -1] } }
        #expect(id?.description.contains("model.vocab.a") == true)
        let replacement = loadError { $0["pre_tokenizer"] = ["type": "Metaspace", "replacement": "__", "prepend_scheme": "first"] }
        #expect(replacement?.description.contains("pre_tokenizer.replacement") == true)
        let scheme = loadError { $0["pre_tokenizer"] = ["type": "Metaspace", "replacement": "▁", "prepend_scheme": "sometimes"] }
        #expect(scheme?.description.contains("pre_tokenizer.prepend_scheme") == true)
        let noType = loadError { $0["decoder"] = ["content": " "] }
        #expect(noType?.description.contains("'decoder'") == true)
        let noModel = loadError { $0["model"] = nil }
        #expect(noModel != nil)
    }

    @Test func badRegexIsReported() {
        let error = loadError { $0["normalizer"] = ["type": "Replace", "pattern": ["Regex": "(unclosed"], "content": ""] }
        #expect(error?.description.contains("(unclosed") == true)
    }

    @Test func missingFilesAreReported() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        #expect(throws: TokenizerError.self) { try Tokenizer(directory: dir.path) }
        // A bad tokenizer_config.json is an error too, not silently ignored.
        try JSONSerialization.data(withJSONObject: smallTokenizerJSON()).write(to: dir.appendingPathComponent("tokenizer.json"))
        try Data("{\"bos_token\": 5}".utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        do {
            _ = try Tokenizer(directory: dir.path)
            Issue.record("loaded a bad tokenizer_config.json")
        } catch {
            #expect("\(error)".contains("bos_token"))
        }
    }
}
