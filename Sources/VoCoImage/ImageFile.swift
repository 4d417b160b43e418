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
        // The type is checked before opening (opening a FIFO blocks until a writer comes), and
        // again on the descriptor, opened non-blocking, in case the path changed in between.
        var info = stat()
        guard stat(path, &info) == 0 else { throw ImageError.cannotRead(source: path, reason: String(cString: strerror(errno))) }
        if let kind = notRegular(info) { throw ImageError.cannotRead(source: path, reason: "\(kind), not a regular file") }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw ImageError.cannotRead(source: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard fstat(fd, &info) == 0 else { throw ImageError.cannotRead(source: path, reason: String(cString: strerror(errno))) }
        if let kind = notRegular(info) { throw ImageError.cannotRead(source: path, reason: "\(kind), not a regular file") }
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

    /// What a file that is not a regular file is ("a directory", "a FIFO"...), or nil.
    static func notRegular(_ info: stat) -> String? {
        switch info.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "a special file"
        }
    }

    /// A JSON config file's bytes (regular files only: a FIFO would block).
    static func readConfig(path: String) throws -> Data {
        var info = stat()
        if stat(path, &info) == 0, let kind = notRegular(info) { throw ImageError.cannotRead(source: path, reason: "\(kind), not a regular file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageError.cannotRead(source: path, reason: "no such file or not readable")
        }
        return data
    }

    /// Reads, hashes and decodes an image file.
    public static func load(path: String, limits: ImageLimits = .default) throws -> LoadedImage {
        let (bytes, digest) = try read(path: path, limits: limits)
        let decoded = try ImageDecoder.decode(bytes, source: path, limits: limits)
        return LoadedImage(path: path, decoded: decoded, sha256: digest, byteCount: bytes.count)
    }
}
