import Foundation
import Testing
import VoCoImage
import VoCoPipeline
import VoCoStore
import VoCoTestSupport

// MARK: - Bulk ingest in process: idempotence, de-duplication, order, bad files

@Suite struct IngestTests {
    @Test func aSecondRunCompressesNothingAndChangesNothing() throws {
        let folder = try sampleFolder(try sampleImageNames(10))
        let store = try scratchStore()
        let first = try bundledIngestor(store).ingest(paths: [folder], into: "shapes")
        #expect(first.counts.compressed == 10 && first.counts.alreadyCached == 0 && first.counts.added == 10)
        #expect(first.counts.bytesStored > 0 && !first.stopped && first.failures.isEmpty)
        let before = try StoreSnapshot(store)
        let firstSeen = try store.read { r in try r.members(of: "shapes").map { try r.image($0.image)?.firstSeen } }

        let second = try bundledIngestor(store).ingest(paths: [folder], into: "shapes")
        #expect(second.counts.compressed == 0 && second.counts.alreadyCached == 10 && second.counts.added == 0)
        #expect(second.counts.bytesStored == 0)
        #expect(try StoreSnapshot(store) == before)
        #expect(try store.read { r in try r.members(of: "shapes").map { try r.image($0.image)?.firstSeen } } == firstSeen)
        #expect(try store.verify().failures.isEmpty)
    }

    @Test func anImageIsCompressedOncePerModelAcrossRunsCollectionsAndCopies() throws {
        let names = try sampleImageNames(6)
        let folder = try sampleFolder(names)
        // Two more copies of the first image under other names, one in a subfolder.
        try FileManager.default.createDirectory(atPath: folder + "/sub", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(folder)/\(names[0])", toPath: "\(folder)/sub/copy-\(names[0])")
        try FileManager.default.copyItem(atPath: "\(folder)/\(names[0])", toPath: "\(folder)/zz-\(names[0])")
        let store = try scratchStore()
        let ingestor = try bundledIngestor(store, batch: 3)
        let first = try ingestor.ingest(paths: [folder], into: "a")
        #expect(first.counts.compressed == 6 && first.counts.alreadyCached == 2 && first.counts.added == 6)
        #expect(try store.read { try $0.members(of: "a").count } == 6)

        let second = try ingestor.ingest(paths: [folder], into: "b")
        #expect(second.counts.compressed == 0 && second.counts.alreadyCached == 8 && second.counts.added == 6)
        let snapshot = try StoreSnapshot(store)
        #expect(snapshot.records.count == 6)
        #expect(snapshot.collections["a"] == snapshot.collections["b"])
        // Every name an image arrived under is kept, the first one first.
        let digest = try sha256(file: "\(folder)/\(names[0])")
        #expect(snapshot.images[digest]?.sourceNames == ["\(folder)/\(names[0])", "\(folder)/sub/copy-\(names[0])", "\(folder)/zz-\(names[0])"])
    }

    @Test func membersFollowTheSortedWalkAndAddingTwiceIsANoOp() throws {
        let folder = TestPaths.scratch("order")
        // Written in an order unlike the sorted one, across folders.
        for (i, name) in ["m/2.jpg", "a.jpg", "z/y/1.jpg", "m/10.jpg", "b.jpg"].enumerated() {
            let path = (folder as NSString).appendingPathComponent(name)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(SyntheticImages.jpeg(seed: UInt64(100 + i))).write(to: URL(fileURLWithPath: path))
        }
        let expected = try ["a.jpg", "b.jpg", "m/10.jpg", "m/2.jpg", "z/y/1.jpg"].map { try sha256(file: "\(folder)/\($0)") }
        let store = try scratchStore()
        let ingestor = try bundledIngestor(store, batch: 2)
        _ = try ingestor.ingest(paths: [folder + "/z", folder], into: "c")
        #expect(try store.read { try $0.members(of: "c").map(\.image) } == expected)
        #expect(try store.read { try $0.members(of: "c").map(\.ordinal) } == [0, 1, 2, 3, 4])

        // A new file that sorts first joins at the end: existing members keep their places.
        try Data(SyntheticImages.jpeg(seed: 999)).write(to: URL(fileURLWithPath: folder + "/0-new.jpg"))
        let again = try ingestor.ingest(paths: [folder], into: "c")
        #expect(again.counts.added == 1 && again.counts.compressed == 1)
        #expect(try store.read { try $0.members(of: "c").map(\.image) } == expected + [try sha256(file: folder + "/0-new.jpg")])
    }

    @Test func badFilesAreNamedAndSkippedAndTheRunGoesOn() throws {
        let names = try sampleImageNames(4)
        let folder = try sampleFolder(names)
        let png = try Data(contentsOf: URL(fileURLWithPath: "\(TestPaths.samples)/00002.png"))
        try png.prefix(png.count / 2).write(to: URL(fileURLWithPath: folder + "/truncated.png"))
        var jpeg = SyntheticImages.jpeg(seed: 7)
        for i in 200..<min(jpeg.count - 2, 400) { jpeg[i] = 0xFF }  // markers in the entropy-coded data
        try Data(jpeg).write(to: URL(fileURLWithPath: folder + "/corrupt.jpg"))
        try Data("just text".utf8).write(to: URL(fileURLWithPath: folder + "/notes.jpg"))  // the name says JPEG, the content does not
        _ = FileManager.default.createFile(atPath: folder + "/empty.png", contents: Data())
        let big = RGBImage(width: 300, height: 300, fill: (1, 2, 3))
        try Data(JPEGEncoder.encode(big) ?? []).write(to: URL(fileURLWithPath: folder + "/big.jpg"))

        let store = try scratchStore()
        var options = IngestOptions(batchSize: 3, prepareThreads: 2)
        options.limits.maximumPixels = 250 * 250
        let summary = try bundledIngestor(store, limits: options).ingest(paths: [folder], into: "mixed")
        let failed = Dictionary(uniqueKeysWithValues: summary.failures.map { (($0.path as NSString).lastPathComponent, $0.reason) })
        let skipped = Dictionary(uniqueKeysWithValues: summary.skippedFiles.map { (($0.path as NSString).lastPathComponent, $0.reason) })
        #expect(failed["truncated.png"]?.contains("truncated PNG") == true, "\(failed)")
        #expect(failed["corrupt.jpg"] != nil, "\(failed)")
        #expect(failed["big.jpg"]?.contains("exceeds the limit of 62500 pixels") == true, "\(failed)")
        #expect(failed.count == 3)
        #expect(skipped["notes.jpg"]?.contains("not a JPEG or PNG by content") == true)
        #expect(skipped["empty.png"]?.contains("empty") == true)
        #expect(summary.counts.compressed == 4 && summary.counts.failed == 3 && summary.counts.skipped == 2)
        #expect(summary.counts.done == summary.counts.total)
        #expect(try store.read { try $0.members(of: "mixed").count } == 4)
        #expect(try store.verify().failures.isEmpty)
    }

    @Test func aFileThatCannotBeReadFailsWithItsPath() throws {
        let store = try scratchStore()
        let ingestor = try bundledIngestor(store)
        let missing = TestPaths.scratch("missing") + "/gone.png"
        var results: [IngestResult] = []
        try ingestor.run([IngestSource(path: missing, collection: "c")]) { results += $0.results }
        #expect(results.count == 1)
        guard case let .failed(reason) = results.first?.outcome else { Issue.record("not failed: \(results)"); return }
        #expect(reason.contains("No such file"))
        #expect(try store.read { try $0.collection(named: "c") } == nil)
    }

    /// Stopping ends the run between batches; the batch already compressed is still committed
    /// (a batch commits while the next one is compressed).
    @Test func progressIsReportedPerBatchAndStoppingKeepsWhatWasCommitted() throws {
        let folder = try sampleFolder(try sampleImageNames(9))
        let store = try scratchStore()
        var reports: [IngestProgress] = []
        let summary = try bundledIngestor(store, batch: 2).ingest(paths: [folder], into: "p", shouldStop: { reports.count >= 3 }) {
            reports.append($0)
        }
        #expect(summary.stopped)
        #expect(reports.map(\.done) == [0, 2, 4, 6])
        #expect(reports.allSatisfy { $0.total == 9 })
        #expect(try store.read { try $0.members(of: "p").count } == 6)
        #expect(summary.counts.done == 6)
    }

    @Test func invalidSettingsAreRefusedBeforeAnyWork() throws {
        let store = try scratchStore()
        #expect(throws: PipelineError.self) { try bundledIngestor(store, batch: 0) }
        #expect(throws: PipelineError.self) { try bundledIngestor(store, batch: Int.max) }
        #expect(throws: StoreError.self) { try bundledIngestor(store).ingest(paths: [], into: "") }
    }
}
