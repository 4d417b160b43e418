import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An image file read and decoded, with its identity.
public struct LoadedImage: Sendable {
    public let path: String
    public let decoded: DecodedImage
    /// SHA-256 of the file's bytes, as they were read: the identity used for de-duplication.
    public let sha256: [UInt8]
    public let byteCount: Int

    public var sha256Hex: String { sha256.map { String(format: "%02x", $0) }.joined() }
    public var image: RGBImage { decoded.image }
}

public enum ImageFile {
    /// Bytes read per call; the digest is updated chunk by chunk as they arrive.
    static let chunkSize = 1 << 20

    /// Reads the whole file (refusing one over `limits.maximumFileBytes` before reading) and
    /// hashes it on the way in.
    public static func read(path: String, limits: ImageLimits = .default) throws -> (bytes: [UInt8], sha256: [UInt8]) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ImageError.cannotRead(source: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ImageError.cannotRead(source: path, reason: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw ImageError.cannotRead(source: path, reason: "not a regular file") }
        let expected = Int(info.st_size)
        guard expected <= limits.maximumFileBytes else {
            throw ImageError.fileTooLarge(source: path, bytes: expected, limit: limits.maximumFileBytes)
        }
        var hasher = SHA256()
        var bytes = [UInt8](repeating: 0, count: expected)
        var filled = 0
        try bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }  // an empty file
            while filled < expected {
                let n = Glibc.read(fd, base + filled, min(chunkSize, expected - filled))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ImageError.cannotRead(source: path, reason: String(cString: strerror(errno)))
                }
                if n == 0 { break }  // the file shrank while we read it
                hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[filled..<(filled + n)]))
                filled += n
            }
        }
        bytes.removeLast(expected - filled)
        return (bytes, Array(hasher.finalize()))
    }

    /// Reads, hashes and decodes an image file.
    public static func load(path: String, limits: ImageLimits = .default) throws -> LoadedImage {
        let (bytes, digest) = try read(path: path, limits: limits)
        let decoded = try ImageDecoder.decode(bytes, source: path, limits: limits)
        return LoadedImage(path: path, decoded: decoded, sha256: digest, byteCount: bytes.count)
    }
}
