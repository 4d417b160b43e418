import Foundation
import Logging
import VoCoStore

// MARK: - Files -> jobs in the store's queue

/// Puts accepted files into the store's job queue: the file is durable first, then the job is
/// enqueued (one committed transaction), then the `.job` sidecar records that it was. After a
/// crash, `reconcile` finishes what each of those steps left half done.
final class IngestIntake: @unchecked Sendable {
    let queue: any JobQueue
    let folders: IngestFolders
    let model: Digest
    /// Jobs waiting or running (all workers) at which uploads get 503 and the spool waits.
    let maximumQueue: Int
    private let wake: @Sendable () -> Void

    init(queue: any JobQueue, folders: IngestFolders, model: Digest, maximumQueue: Int, wake: @escaping @Sendable () -> Void) {
        self.queue = queue
        self.folders = folders
        self.model = model
        self.maximumQueue = maximumQueue
        self.wake = wake
    }

    func isFull() throws -> Bool { try queue.counts().pending >= maximumQueue }

    /// Enqueues the job of a durable file and marks it queued.
    @discardableResult
    func enqueue(_ file: IngestFolders.QueuedFile, collection: String) throws -> JobID {
        guard let id = try queue.enqueue([IngestJob(collection: collection, source: file.path, model: model)]).first else {
            throw IngestFileError.io(path: file.path, reason: "the queue returned no job id")
        }
        try folders.markQueued(file, job: id)
        wake()
        return id
    }

    // MARK: After a restart

    struct Reconciled: Equatable {
        /// Spool files whose job had not been enqueued: enqueued now.
        var enqueued = 0
        /// Files of finished jobs, moved or deleted now.
        var settled = 0
        /// Uploads never acknowledged, and leftovers (temporary files, sidecars without a file).
        var discarded = 0
    }

    /// Every queue folder against the queue: a file without a sidecar was never acknowledged
    /// (an upload: deleted, the client saw no 202) or not yet enqueued (a spool file: enqueued);
    /// a file whose job finished is settled; a file with a waiting job stays.
    func reconcile() throws -> Reconciled {
        var counts = Reconciled()
        for (folder, collection) in try queueFolders() {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            var payloads: [String: IngestFolders.QueuedFile] = [:]
            for name in names {
                let path = (folder as NSString).appendingPathComponent(name)
                if let file = IngestFolders.QueuedFile(path: path) {
                    payloads[file.uuid] = file
                } else if name.hasPrefix(".tmp-") {
                    try DurableFile.remove(path)
                    counts.discarded += 1
                }
            }
            for name in names where name.utf8.count == 40 && name.hasSuffix(".job") && payloads[String(name.prefix(36))] == nil {
                try DurableFile.remove((folder as NSString).appendingPathComponent(name))  // its file was settled
            }
            for file in payloads.values.sorted(by: { $0.path < $1.path }) {
                let recorded = (try? String(contentsOfFile: file.sidecar, encoding: .utf8))
                    .map { JobID($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                if let id = recorded, let job = try queue.job(id) {
                    guard job.state == .done || job.state == .failed else { continue }
                    try folders.settle(source: file.path, job: id, failed: job.state == .failed ? (job.error ?? "failed") : nil)
                    counts.settled += 1
                } else if let collection {
                    try enqueue(file, collection: collection)
                    counts.enqueued += 1
                } else {
                    try DurableFile.remove(file.path)
                    try DurableFile.remove(file.sidecar)
                    counts.discarded += 1
                }
            }
        }
        return counts
    }

    /// The uploads folder (no collection: uploads carry theirs in the job) and each spool
    /// collection's queue folder.
    func queueFolders() throws -> [(folder: String, collection: String?)] {
        var out: [(String, String?)] = [(folders.uploads, nil)]
        guard let spool = folders.spool else { return out }
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).sorted() where !name.hasPrefix(".") {
            let queue = ((spool as NSString).appendingPathComponent(name) as NSString).appendingPathComponent(IngestFolders.queueFolderName)
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: queue, isDirectory: &isFolder), isFolder.boolValue { out.append((queue, name)) }
        }
        return out
    }
}
