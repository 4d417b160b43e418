import Foundation
import VoCoPipeline
import VoCoStore

// MARK: - Where accepted files wait for their jobs

/// The daemon's files between acceptance and ingestion. A queue folder holds `<uuid>-<name>`
/// (the accepted file) and, once its job is in the store's queue, `<uuid>.job` (the job id).
/// Uploads wait in `UPLOADS/`; a spool collection's files in `SPOOL/NAME/.voco-queue/`, and
/// end in `SPOOL/NAME/done/` or `SPOOL/NAME/failed/` (with `<name>.reason`).
final class IngestFolders: @unchecked Sendable {
    let uploads: String
    let spool: String?

    static let queueFolderName = ".voco-queue"
    static let doneFolderName = "done"
    static let failedFolderName = "failed"

    init(uploads: String, spool: String?) throws {
        self.uploads = FileWalk.absolute(uploads)
        self.spool = spool.map(FileWalk.absolute)
        try DurableFile.makeFolder(self.uploads)
        if let spool = self.spool { try DurableFile.makeFolder(spool) }
    }

    /// One accepted file in a queue folder.
    struct QueuedFile: Equatable {
        let folder: String
        let uuid: String
        /// The name it arrived with.
        let name: String

        var path: String { (folder as NSString).appendingPathComponent("\(uuid)-\(name)") }
        var sidecar: String { (folder as NSString).appendingPathComponent("\(uuid).job") }

        init(folder: String, name: String) {
            self.folder = folder
            uuid = UUID().uuidString.lowercased()
            self.name = name
        }

        /// The file at `path`, when it is a queue folder's `<uuid>-<name>`.
        init?(path: String) {
            let file = (path as NSString).lastPathComponent
            guard file.count > 37, file.utf8.dropFirst(36).first == UInt8(ascii: "-"),
                  UUID(uuidString: String(file.prefix(36))) != nil else { return nil }
            folder = (path as NSString).deletingLastPathComponent
            uuid = String(file.prefix(36))
            name = String(file.dropFirst(37))
        }
    }

    // MARK: Accepting

    /// Writes an upload durably; `name` is cleaned to a safe file name.
    func storeUpload(_ bytes: [UInt8], name: String?) throws -> QueuedFile {
        let file = QueuedFile(folder: uploads, name: Self.safeName(name))
        try DurableFile.write(bytes, to: file.path)
        return file
    }

    /// Moves a settled spool file into its collection's queue folder.
    func takeSpoolFile(_ path: String, collection folder: String) throws -> QueuedFile {
        let queue = (folder as NSString).appendingPathComponent(Self.queueFolderName)
        try DurableFile.makeFolder(queue)
        let file = QueuedFile(folder: queue, name: (path as NSString).lastPathComponent)
        try DurableFile.move(path, to: file.path)
        return file
    }

    /// Records that `file`'s job is in the queue (reconciling after a crash relies on it).
    func markQueued(_ file: QueuedFile, job: JobID) throws {
        try DurableFile.write(Array("\(job.rawValue)\n".utf8), to: file.sidecar)
    }

    // MARK: After a job

    /// The name a job's image is recorded under: the spool path it was dropped at, or the
    /// uploaded file's name.
    func displayName(source: String) -> String {
        guard let file = QueuedFile(path: source) else { return source }
        if let collection = spoolCollectionFolder(of: file) { return (collection as NSString).appendingPathComponent(file.name) }
        return file.name
    }

    /// Done with a finished job's file: an upload is deleted, a spool file moved to `done/` or
    /// `failed/` (with the reason beside it). Files outside the queue folders are left alone.
    func settle(source: String, job: JobID, failed reason: String?) throws {
        guard let file = QueuedFile(path: source) else { return }
        if let collection = spoolCollectionFolder(of: file) {
            if FileManager.default.fileExists(atPath: file.path) {
                let target = (collection as NSString).appendingPathComponent(reason == nil ? Self.doneFolderName : Self.failedFolderName)
                try DurableFile.makeFolder(target)
                var destination = (target as NSString).appendingPathComponent(file.name)
                if FileManager.default.fileExists(atPath: destination) {
                    destination = (target as NSString).appendingPathComponent("\(job.rawValue)-\(file.name)")
                }
                if let reason { try DurableFile.write(Array("job \(job.rawValue): \(reason)\n".utf8), to: destination + ".reason") }
                try DurableFile.move(file.path, to: destination)
            }
        } else if file.folder == uploads {
            try DurableFile.remove(file.path)
        } else {
            return
        }
        try DurableFile.remove(file.sidecar)
    }

    /// `SPOOL/NAME` when `file` waits in `SPOOL/NAME/.voco-queue`.
    func spoolCollectionFolder(of file: QueuedFile) -> String? {
        guard let spool, (file.folder as NSString).lastPathComponent == Self.queueFolderName else { return nil }
        let collection = (file.folder as NSString).deletingLastPathComponent
        return (collection as NSString).deletingLastPathComponent == spool ? collection : nil
    }

    // MARK: Names

    /// Up to 120 bytes of `[A-Za-z0-9._-]`, not starting with a dot; "upload" when empty.
    static func safeName(_ name: String?) -> String {
        let last = (name ?? "").split(separator: "/").last.map(String.init) ?? ""
        var cleaned = String(last.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || "._-".unicodeScalars.contains(scalar)) ? Character(scalar) : "_"
        }.prefix(120))
        while cleaned.hasPrefix(".") { cleaned.removeFirst() }
        return cleaned.isEmpty ? "upload" : cleaned
    }
}
