import Foundation

/// GPT-2's byte-level alphabet (tokenizers' `bytes_char`): every byte gets a printable character,
/// printable Latin-1 bytes keep their own, the others take U+0100 onwards in byte order.
enum ByteLevelAlphabet {
    /// [256] character of each byte
    static let characters: [Unicode.Scalar] = {
        var visible = Set<UInt8>()
        for b in UInt8(33)...126 { visible.insert(b) }
        for b in UInt8(161)...172 { visible.insert(b) }
        for b in UInt8(174)...255 { visible.insert(b) }
        var next: UInt32 = 256
        return (0...255).map { (b: Int) -> Unicode.Scalar in
            if visible.contains(UInt8(b)) { return Unicode.Scalar(UInt8(b)) }
            defer { next += 1 }
            return Unicode.Scalar(next) ?? "?" // next stays below 0x144: always a scalar
        }
    }()

    /// character -> byte
    static let bytes: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in characters.enumerated() { map[c] = UInt8(b) }
        return map
    }()

    /// The pre-tokenizer's split (GPT-2's pattern), in tokenizers' Oniguruma spelling.
    static let splitRegex: NSRegularExpression = {
        let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        // A constant pattern that compiles: a failure here is a programming error, not bad input.
        return try! NSRegularExpression(pattern: TextPattern.icuPattern(fromOniguruma: gpt2))
    }()

    /// Each scalar becomes the characters of its UTF-8 bytes, all aligned with the scalar.
    static func encode(_ text: NormalizedText) -> NormalizedText {
        var scalars: [Unicode.Scalar] = []
        var origins: [Int] = []
        scalars.reserveCapacity(text.count)
        origins.reserveCapacity(text.count)
        for (s, origin) in zip(text.scalars, text.origins) {
            forEachUTF8Byte(of: s) { b in
                scalars.append(characters[Int(b)])
                origins.append(origin)
            }
        }
        return NormalizedText(scalars: scalars, origins: origins)
    }

    /// ByteLevel decoder: a token made only of alphabet characters gives their bytes, any other
    /// token its own UTF-8; the bytes of all tokens are read as UTF-8 with U+FFFD for bad sequences.
    static func decode(_ tokens: [String]) -> String {
        var out: [UInt8] = []
        for token in tokens {
            var bytesOfToken: [UInt8] = []
            var allMapped = true
            for s in token.unicodeScalars {
                guard let b = bytes[s] else { allMapped = false; break }
                bytesOfToken.append(b)
            }
            out += allMapped ? bytesOfToken : Array(token.utf8)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Calls `body` with each UTF-8 byte of `scalar`.
@inline(__always)
func forEachUTF8Byte(of scalar: Unicode.Scalar, _ body: (UInt8) -> Void) {
    let v = scalar.value
    switch v {
    case 0..<0x80:
        body(UInt8(v))
    case 0x80..<0x800:
        body(UInt8(0xC0 | (v >> 6)))
        body(UInt8(0x80 | (v & 0x3F)))
    case 0x800..<0x10000:
        body(UInt8(0xE0 | (v >> 12)))
        body(UInt8(0x80 | ((v >> 6) & 0x3F)))
        body(UInt8(0x80 | (v & 0x3F)))
    default:
        body(UInt8(0xF0 | (v >> 18)))
        body(UInt8(0x80 | ((v >> 12) & 0x3F)))
        body(UInt8(0x80 | ((v >> 6) & 0x3F)))
        body(UInt8(0x80 | (v & 0x3F)))
    }
}
