import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Files and folders -> the sorted list of files to ingest

/// A file or folder the walk did not take, and why. `isFailure` marks what may hide images
/// (a folder that cannot be read); the rest (symlink loops, broken links, sockets) is skipped.
public struct WalkProblem: Sendable, Equatable, Codable {
    public var path: String
    public var reason: String
    public var isFailure: Bool

    public init(path: String, reason: String, isFailure: Bool) {
        self.path = path
        self.reason = reason
        self.isFailure = isFailure
    }
}

/// What a walk found: regular files sorted by their path's UTF-8 bytes (each path once), and
/// what it could not take.
public struct WalkResult: Sendable, Equatable {
    public var files: [String]
    public var problems: [WalkProblem]
}

/// Walks files and folders recursively, following symbolic links. The order is stable: all the
/// files found, sorted bytewise by path, whatever order the arguments or the folders list them
/// in. A folder reached again through a link (a loop, or the same folder twice) is walked once
/// and the second way is reported; a folder that cannot be read is reported; neither stops the walk.
public enum FileWalk {
    /// Paths are made absolute first (`absolute`), so the order does not depend on the
    /// current folder.
    public static func collect(_ paths: [String]) -> WalkResult {
        var walker = Walker()
        for path in paths { walker.visit(absolute(path), ancestors: []) }
        let files = Set(walker.files).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        return WalkResult(files: files, problems: walker.problems)
    }

    /// A path made absolute against the current directory, `.` and `..` resolved textually
    /// (links are kept as named: the name a user gave is the name recorded).
    public static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        var parts: [Substring] = []
        for part in joined.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { _ = parts.popLast(); continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }
}

// MARK: - The walk

private struct DirectoryID: Hashable {
    let device: UInt64
    let inode: UInt64
}

private struct Walker {
    var files: [String] = []
    var problems: [WalkProblem] = []
    /// Every folder walked so far, with the path it was first walked as.
    var walked: [DirectoryID: String] = [:]

    mutating func visit(_ path: String, ancestors: [DirectoryID]) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let error = errno
            var linkInfo = stat()
            if lstat(path, &linkInfo) == 0, (linkInfo.st_mode & S_IFMT) == S_IFLNK {
                let reason = error == ELOOP ? "symbolic link loop" : "broken symbolic link (\(String(cString: strerror(error))))"
                problems.append(WalkProblem(path: path, reason: reason, isFailure: false))
            } else {
                problems.append(WalkProblem(path: path, reason: "cannot read: \(String(cString: strerror(error)))", isFailure: true))
            }
            return
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            files.append(path)
        case S_IFDIR:
            let id = DirectoryID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
            if let first = walked[id] {
                guard first != path else { return }  // named twice (overlapping arguments): walked once, nothing to report
                let reason = ancestors.contains(id) ? "symbolic link loop: a folder that contains it (\(first))" : "the same folder as \(first), walked once"
                problems.append(WalkProblem(path: path, reason: reason, isFailure: false))
                return
            }
            walked[id] = path
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
                problems.append(WalkProblem(path: path, reason: "cannot list the folder: \(Self.reason(error))", isFailure: true))
                return
            }
            for name in names.sorted() {
                visit(path.hasSuffix("/") ? path + name : path + "/" + name, ancestors: ancestors + [id])
            }
        default:
            problems.append(WalkProblem(path: path, reason: "not a regular file or folder (\(Self.kind(info.st_mode)))", isFailure: false))
        }
    }

    static func reason(_ error: Error) -> String {
        if let posix = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(posix.code)))
        }
        return (error as NSError).localizedDescription
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        default: return "mode \(String(mode, radix: 8))"
        }
    }
}
