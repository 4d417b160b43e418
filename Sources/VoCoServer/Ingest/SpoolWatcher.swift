import Foundation
import Logging
import ServiceLifecycle
import VoCoStore

// MARK: - A spool folder per collection

/// Watches `SPOOL/NAME/` for every collection NAME (a folder name that is a valid collection
/// name and does not start with a dot). A file directly in it is taken once it has *settled*:
/// it is a regular file, its name does not start with `.` and does not end in `.tmp`, `.part`,
/// `.partial` or `.crdownload`, and it has not been modified for `settle` seconds. Writers
/// should write under such a name and rename into place (taken at the next scan); a file
/// written in place is taken `settle` seconds after its last write. A taken file moves to
/// `SPOOL/NAME/.voco-queue/` and gets a job; it ends in `done/` or `failed/`.
final class SpoolWatcher: Service, @unchecked Sendable {
    let intake: IngestIntake
    let spool: String
    let settle: TimeInterval
    let interval: TimeInterval
    let logger: Logger

    static let unfinishedSuffixes = [".tmp", ".part", ".partial", ".crdownload"]

    init(intake: IngestIntake, spool: String, settle: TimeInterval, interval: TimeInterval, logger: Logger) {
        self.intake = intake
        self.spool = spool
        self.settle = settle
        self.interval = interval
        self.logger = logger
    }

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    let taken = try await offload { self.scan() }
                    if taken > 0 { self.logger.info("spool", metadata: ["taken": "\(taken)"]) }
                    try await Task.sleep(for: .milliseconds(Int64(self.interval * 1000)))
                }
            }
        } catch is CancellationError {
            return
        }
    }

    /// One pass over the spool; returns how many files were taken. Problems are logged, and
    /// the file stays where it is for the next pass.
    func scan(now: Date = Date()) -> Int {
        var taken = 0
        let fm = FileManager.default
        for name in ((try? fm.contentsOfDirectory(atPath: spool)) ?? []).sorted() where !name.hasPrefix(".") {
            let folder = (spool as NSString).appendingPathComponent(name)
            guard isFolder(folder), (try? CollectionName.validate(name)) != nil else { continue }
            for file in ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).sorted() where isCandidate(file) {
                let path = (folder as NSString).appendingPathComponent(file)
                guard isSettled(path, now: now) else { continue }
                do {
                    if try intake.isFull() {
                        logger.notice("spool: the queue is full; files wait in the spool", metadata: ["limit": "\(intake.maximumQueue)"])
                        return taken
                    }
                    let queued = try intake.folders.takeSpoolFile(path, collection: folder)
                    try intake.enqueue(queued, collection: name)
                    taken += 1
                } catch {
                    logger.error("spool: cannot take a file", metadata: ["path": "\(path)", "error": "\(error)"])
                }
            }
        }
        return taken
    }

    func isCandidate(_ name: String) -> Bool {
        !name.hasPrefix(".") && !Self.unfinishedSuffixes.contains { name.lowercased().hasSuffix($0) }
    }

    /// A regular file (not a link) last modified at least `settle` seconds ago.
    func isSettled(_ path: String, now: Date) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return false }
        let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        return now.timeIntervalSince1970 - modified >= settle
    }

    private func isFolder(_ path: String) -> Bool {
        var isFolder: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue
    }
}
