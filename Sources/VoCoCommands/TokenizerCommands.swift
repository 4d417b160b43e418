import ArgumentParser
import Foundation
import VoCoTokenizer

/// `voco debug encode --tokenizer DIR TEXT`: the token ids of a text as a JSON array.
struct EncodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Print the token ids of a text as a JSON array (tokenizer.json, as Hugging Face tokenizers does)."
    )

    @Option(help: "Directory with tokenizer.json (and tokenizer_config.json).")
    var tokenizer: String

    @Option(help: "Read the text from this file (UTF-8, used as it is: a trailing newline is part of the text).")
    var file: String?

    @Flag(help: "Do not add special tokens (the post-processor's BOS/EOS).")
    var noSpecial = false

    @Argument(help: "The text (when --file is not given).")
    var text: String?

    func validate() throws {
        if (file == nil) == (text == nil) { throw ValidationError("give either a text argument or --file") }
    }

    func run() throws {
        let tok = try Tokenizer(directory: tokenizer)
        let input: String
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("\(file): cannot read") }
            guard let s = String(data: data, encoding: .utf8) else { throw ValidationError("\(file): not UTF-8") }
            input = s
        } else {
            input = text ?? ""
        }
        let ids = tok.encode(input, addSpecialTokens: !noSpecial)
        print("[" + ids.map(String.init).joined(separator: ",") + "]")
    }
}

/// `voco debug decode --tokenizer DIR IDS`: the text of token ids.
struct DecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Print the text of token ids (a JSON array, or ids separated by spaces or commas)."
    )

    @Option(help: "Directory with tokenizer.json (and tokenizer_config.json).")
    var tokenizer: String

    @Option(help: "Read the ids from this file instead of the arguments.")
    var file: String?

    @Flag(help: "Leave special tokens (<s>, </s>, <image>...) out of the text.")
    var skipSpecial = false

    @Flag(help: "Print the text as a JSON string (exact: no newline added, control characters escaped).")
    var json = false

    @Argument(help: "Token ids, e.g. '[1, 15043]' or 1 15043.")
    var ids: [String] = []

    func run() throws {
        let tok = try Tokenizer(directory: tokenizer)
        var source = ids.joined(separator: " ")
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("\(file): cannot read") }
            source = String(decoding: data, as: UTF8.self)
        }
        let parts = source.split { "[], \n\t\r".contains($0) }
        let values = try parts.map { part -> Int in
            guard let id = Int(part) else { throw ValidationError("'\(part)' is not a token id") }
            return id
        }
        let text = tok.decode(values, skipSpecialTokens: skipSpecial)
        if json {
            let data = try JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
            // Strip the array brackets: one JSON string.
            print(String(decoding: data.dropFirst().dropLast(), as: UTF8.self))
        } else {
            print(text)
        }
    }
}
