import Foundation
import VoCoStore

// MARK: - Folders -> one collection, with progress and a summary

extension Ingestor {
    /// Walks `paths` (FileWalk: recursive, sorted) and ingests every file into `collection`,
    /// recording each under its absolute path. `onProgress` is called once before the first
    /// batch and after every committed one. Files that are not images are skipped, bad images
    /// fail; neither stops the run. `shouldStop` ends it between batches (`stopped` in the summary).
    public func ingest(paths: [String], into collection: String, shouldStop: () -> Bool = { false },
                       onProgress: (IngestProgress) -> Void = { _ in }) throws -> IngestSummary {
        try CollectionName.validate(collection)
        let started = Date()
        let walk = FileWalk.collect(paths)
        var progress = IngestProgress(total: walk.files.count + walk.problems.count)
        var skipped: [IngestIssue] = [], failures: [IngestIssue] = []
        for problem in walk.problems {
            let issue = IngestIssue(path: problem.path, reason: problem.reason)
            progress.done += 1
            if problem.isFailure {
                progress.failed += 1
                failures.append(issue)
            } else {
                progress.skipped += 1
                skipped.append(issue)
            }
        }
        onProgress(progress)
        let sources = walk.files.map { IngestSource(path: $0, collection: collection) }
        let finished = try run(sources, shouldStop: shouldStop) { batch in
            for result in batch.results {
                progress.count(result.outcome)
                switch result.outcome {
                case let .skipped(reason): skipped.append(IngestIssue(path: result.source.path, reason: reason))
                case let .failed(reason): failures.append(IngestIssue(path: result.source.path, reason: reason))
                case .compressed, .cached: break
                }
            }
            progress.added += batch.added
            progress.seconds = Date().timeIntervalSince(started)
            onProgress(progress)
        }
        progress.seconds = Date().timeIntervalSince(started)
        return IngestSummary(collection: collection, store: store.location, model: fingerprint, counts: progress,
                             stopped: !finished, skippedFiles: skipped, failures: failures)
    }
}
