// MARK: - Redis Cluster hash slots

/// The slot of a key, as Redis Cluster computes it: CRC16 (XMODEM: polynomial 0x1021, initial
/// value 0, no reflection) of the key modulo 16384, where a key holding a hash tag — a `{`
/// followed later by a `}` with at least one byte between them — hashes only the bytes between
/// the first `{` and the first `}` after it. Keys with the same tag share a slot, so a script or
/// MULTI may touch all of them.
public enum HashSlot {
    public static let count = 16384

    public static func of(_ key: [UInt8]) -> Int {
        key.withUnsafeBufferPointer { of(UnsafeRawBufferPointer($0)) }
    }

    public static func of(_ key: String) -> Int { of(Array(key.utf8)) }

    public static func of(_ key: UnsafeRawBufferPointer) -> Int {
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
           let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
            return Int(crc16(UnsafeRawBufferPointer(rebasing: key[(open + 1)..<close]))) & (count - 1)
        }
        return Int(crc16(key)) & (count - 1)
    }

    /// CRC16-XMODEM, table-driven.
    public static func crc16(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    public static func crc16(_ bytes: [UInt8]) -> UInt16 { bytes.withUnsafeBytes { crc16($0) } }

    // [256] the CRC of each byte value shifted to the top.
    private static let table: [UInt16] = (0..<256).map { n in
        var crc = UInt16(n) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
