import Foundation

// MARK: - Checksummed values (schema 3)

/// LMDB has no page checksums, and a JSON value with one byte changed often still parses. So
/// every value that nothing else checks (the JSON of `images`, `models` and `jobs`, and every
/// `meta` value but `schema_version`) ends with 4 bytes: the CRC-32C of key and value,
/// little-endian. Records carry their own SHA-256; `collections`, `members` and the job
/// indexes are checked against each other and against `jobs`.
enum ValueSeal {
    static let length = 4

    /// `value` followed by the CRC-32C of `key + value`.
    static func seal(_ value: [UInt8], key: [UInt8]) -> [UInt8] {
        let crc = key.withUnsafeBytes { k in value.withUnsafeBytes { v in CRC32C.update(CRC32C.update(0, k), v) } }
        return value + withUnsafeBytes(of: crc.littleEndian) { Array($0) }
    }

    /// The value without its checksum, or the reason it does not verify.
    static func open(_ sealed: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer) -> Result<UnsafeRawBufferPointer, SealProblem> {
        guard sealed.count >= length else { return .failure(SealProblem(reason: "\(sealed.count) bytes, too short for its checksum")) }
        let value = UnsafeRawBufferPointer(rebasing: sealed[0..<(sealed.count - length)])
        let stored = UInt32(littleEndian: sealed.loadUnaligned(fromByteOffset: sealed.count - length, as: UInt32.self))
        guard CRC32C.update(CRC32C.update(0, key), value) == stored else {
            return .failure(SealProblem(reason: "checksum mismatch (the entry's bytes changed after it was written)"))
        }
        return .success(value)
    }

    static func open(_ sealed: UnsafeRawBufferPointer, key: [UInt8]) -> Result<UnsafeRawBufferPointer, SealProblem> {
        key.withUnsafeBytes { open(sealed, key: $0) }
    }
}

struct SealProblem: Error {
    let reason: String
}

// MARK: - CRC-32C (Castagnoli), reflected, as iSCSI and ext4 use it

enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The CRC of what `crc` covered followed by `bytes` (start with 0).
    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return ~c
    }
}
