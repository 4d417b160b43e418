import Crypto
import Foundation

// MARK: - A full SHA-256 digest

/// A 32-byte SHA-256 digest: the key of an image, a model fingerprint, a file hash.
/// Always full length; prefixes are only a convenience of the command line.
public struct Digest: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public static let byteCount = 32

    /// Exactly 32 bytes.
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }

    public init?(_ raw: UnsafeRawBufferPointer) {
        guard raw.count == Self.byteCount else { return nil }
        bytes = Array(raw)
    }

    /// 64 lowercase or uppercase hex digits.
    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 2 * Self.byteCount else { return nil }
        var out = [UInt8](repeating: 0, count: Self.byteCount)
        for i in 0..<Self.byteCount {
            guard let hi = hexValue(utf8[2 * i]), let lo = hexValue(utf8[2 * i + 1]) else { return nil }
            out[i] = hi << 4 | lo
        }
        bytes = out
    }

    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 2 * bytes.count)
        for (i, b) in bytes.enumerated() {
            out[2 * i] = digits[Int(b >> 4)]
            out[2 * i + 1] = digits[Int(b & 15)]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Any bytes (a key of another length) in hex, for error messages.
    public static func hexString(_ raw: UnsafeRawBufferPointer) -> String {
        raw.map { String(format: "%02x", $0) }.joined()
    }

    /// The first 12 hex digits, for tables.
    public var short: String { String(hex.prefix(12)) }

    public var description: String { hex }

    public static func < (a: Digest, b: Digest) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    // MARK: Hashing

    public static func sha256<D: DataProtocol>(_ data: D) -> Digest {
        Digest(unchecked: Array(SHA256.hash(data: data)))
    }

    public static func sha256(_ raw: UnsafeRawBufferPointer) -> Digest {
        var hasher = SHA256()
        hasher.update(bufferPointer: raw)
        return Digest(unchecked: Array(hasher.finalize()))
    }

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    // MARK: Codable (as hex)

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let digest = Digest(hex: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not 64 hex digits")
        }
        self = digest
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
