import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Files that survive a crash once a call returns

/// File operations that are on disk when they return: data and the directory entry are synced,
/// so "accepted" can mean durable.
enum DurableFile {
    /// Writes `bytes` to a hidden temporary file beside `path`, syncs it, renames it into place
    /// and syncs the folder.
    static func write(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        let temporary = (folder as NSString).appendingPathComponent(".tmp-\(UUID().uuidString)")
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure(temporary, "cannot create") }
        var written = 0
        while written < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                let error = failure(temporary, "cannot write")
                close(fd)
                unlink(temporary)
                throw error
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            let error = failure(temporary, "cannot sync")
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        try move(temporary, to: path)
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try bytes.withUnsafeBytes { try write($0, to: path) }
    }

    /// Renames `source` to `destination` (same file system) and syncs both folders.
    static func move(_ source: String, to destination: String) throws {
        guard rename(source, destination) == 0 else { throw failure(source, "cannot rename to \(destination)") }
        let from = (source as NSString).deletingLastPathComponent, to = (destination as NSString).deletingLastPathComponent
        try syncFolder(to)
        if from != to { try syncFolder(from) }
    }

    /// Removes a file (missing is fine) and syncs its folder.
    static func remove(_ path: String) throws {
        guard unlink(path) == 0 || errno == ENOENT else { throw failure(path, "cannot remove") }
        try syncFolder((path as NSString).deletingLastPathComponent)
    }

    static func syncFolder(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure(path, "cannot open the folder") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw failure(path, "cannot sync the folder") }
    }

    /// Creates a folder (and its parents) when missing.
    static func makeFolder(_ path: String) throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw ServerError.cannotPrepare(path: path, reason: "cannot create the folder: \(error.localizedDescription)")
        }
    }

    static func failure(_ path: String, _ what: String) -> Error {
        let code = errno
        if code == ENOSPC || code == EDQUOT { return IngestFileError.diskFull(path: path) }
        return IngestFileError.io(path: path, reason: "\(what): \(String(cString: strerror(code)))")
    }
}

/// A spool or upload file operation that failed.
enum IngestFileError: Error, CustomStringConvertible {
    case diskFull(path: String)
    case io(path: String, reason: String)

    var description: String {
        switch self {
        case let .diskFull(path): return "\(path): no space left on the device"
        case let .io(path, reason): return "\(path): \(reason)"
        }
    }
}
