import ArgumentParser
import Foundation
import VoCoCommands
import VoCoTokenizer

/// Encoding speed on one long stretch of text: LLaMA's legacy tokenizer.json has no
/// pre-tokenizer, so BPE runs on the whole text at once. Baselines in the same run: a plain scan
/// of the text's Unicode scalars, and encoding a 100x smaller text (equal time per byte shows the
/// encoder is linear, not quadratic).
struct TokenizerBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenizer", abstract: "tokenizer.json encode/decode throughput on a 1 MB text.")

    @Option(help: "Tokenizer directory (tokenizer.json).")
    var tokenizer = "Tests/VoCoTokenizerTests/Fixtures/llama2-legacy"

    @Option(help: "Bytes of text to encode.")
    var bytes = 1_000_000

    func validate() throws {
        try OptionCheck.require("bytes", bytes, in: 100...100_000_000)
    }

    func run() throws {
        var loaded: Tokenizer? = nil
        let load = try bestSeconds(repeats: 3) { loaded = try Tokenizer(directory: tokenizer) }
        guard let tok = loaded else { return }
        let text = TokenizerBenchmark.sampleText(bytes: bytes)
        let small = TokenizerBenchmark.sampleText(bytes: bytes / 100)
        let n = Double(text.utf8.count), nSmall = Double(small.utf8.count)

        var scalars = 0
        let scan = bestSeconds { scalars = text.unicodeScalars.reduce(0) { $0 &+ Int($1.value & 1) } }
        var ids: [Int] = []
        let encode = bestSeconds(repeats: 3) { ids = tok.encode(text) }
        let encodeSmall = bestSeconds(iterations: 10) { _ = tok.encode(small) }
        var decoded = ""
        let decode = bestSeconds(repeats: 3) { decoded = tok.decode(ids) }
        let stream = bestSeconds(repeats: 1) {
            var s = tok.streamingDecoder()
            var out = ""
            for id in ids { out += s.push(id) }
            out += s.finish()
            decoded = out
        }

        print("tokenizer: \(tokenizer) (vocabulary \(tok.vocabularySize), loads in \(formatted(load * 1000, 1)) ms)")
        print("text: \(Int(n)) bytes, \(text.unicodeScalars.count) scalars, \(ids.count) tokens (checksum \(scalars & 1))")
        print("scalar scan (baseline): \(formatted(n / scan / 1e6, 1)) MB/s")
        print("encode \(Int(n)) bytes: \(formatted(encode * 1000, 1)) ms, \(formatted(n / encode / 1e6, 2)) MB/s (\(formatted(encode / scan, 0)) x scan)")
        print("encode \(Int(nSmall)) bytes (baseline): \(formatted(encodeSmall * 1000, 2)) ms, \(formatted(nSmall / encodeSmall / 1e6, 2)) MB/s")
        print("decode \(ids.count) tokens: \(formatted(decode * 1000, 1)) ms, \(formatted(Double(ids.count) / decode / 1e6, 2)) M tokens/s")
        print("streaming decode, one id at a time: \(formatted(stream * 1000, 1)) ms, \(formatted(Double(ids.count) / stream / 1e6, 2)) M tokens/s")
        print("round trip equal: \(decoded == tok.decode(ids))")
    }

    /// Deterministic mixed text: English and code words, accented Latin, CJK, emoji, whitespace runs.
    static func sampleText(bytes: Int) -> String {
        let words = ["the", "model", "image", "tokens", "def", "return", "self.layers", "attention", "café", "naïve",
                     "résumé", "Straße", "你好", "世界", "日本語", "한국어", "Привет", "😀", "🚀", "x = 1", "42", "(", ")",
                     "\n", "    ", "\t", "—", "ሰላም", "𝕏"]
        var state: UInt64 = 0x9E3779B97F4A7C15
        var out = ""
        out.reserveCapacity(bytes + 32)
        while out.utf8.count < bytes {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            out += words[Int(state >> 33) % words.count]
            out += " "
        }
        return out
    }
}
