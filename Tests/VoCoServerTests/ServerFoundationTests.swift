import Foundation
import Testing
@testable import VoCoServer
import VoCoStore
import VoCoStoreLMDB
import VoCoTestSupport

// MARK: - Options, token files, problems; what a crash leaves is reconciled

@Suite struct ServerFoundationTests {
    @Test func listenAddressesParse() throws {
        #expect(try ServerOptions.parseListen("0.0.0.0:9000", defaultPort: 1) == ("0.0.0.0", 9000))
        #expect(try ServerOptions.parseListen(":9000", defaultPort: 1) == ("127.0.0.1", 9000))
        #expect(try ServerOptions.parseListen("localhost", defaultPort: 8390) == ("localhost", 8390))
        #expect(try ServerOptions.parseListen("[::1]:7", defaultPort: 1) == ("::1", 7))
        #expect(try ServerOptions.parseListen("[::1]", defaultPort: 5) == ("::1", 5))
        for bad in ["host:99999", "host:x", "[::1", "[::1]x", "h:-1"] {
            #expect(throws: ServerError.self, "\(bad)") { try ServerOptions.parseListen(bad, defaultPort: 1) }
        }
    }

    @Test func tokenFilesMustBePrivateAndLongEnough() throws {
        let folder = TestPaths.scratch("token")
        func write(_ text: String, mode: mode_t) throws -> String {
            let path = folder + "/\(UUID().uuidString)"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            chmod(path, mode)
            return path
        }
        #expect(try ServerOptions.readToken(file: try write("  abcdefghijklmnop-1234 \nsecond line", mode: 0o600)) == "abcdefghijklmnop-1234")
        #expect(throws: ServerError.self) { try ServerOptions.readToken(file: try write("abcdefghijklmnop-1234", mode: 0o644)) }
        #expect(throws: ServerError.self) { try ServerOptions.readToken(file: try write("short", mode: 0o600)) }
        #expect(throws: ServerError.self) { try ServerOptions.readToken(file: try write("", mode: 0o600)) }
        #expect(throws: ServerError.self) { try ServerOptions.readToken(file: folder + "/missing") }
    }

    @Test func problemTypesAreStableAndDistinct() {
        let all = ProblemType.shared + ProblemType.ingest
        #expect(Set(all.map(\.slug)).count == all.count)
        #expect(all.allSatisfy { $0.uri == "urn:voco:problem:\($0.slug)" && $0.status.code >= 400 })
        #expect(ProblemType.queueFull.status.code == 503 && ProblemType.unauthorized.status.code == 401)
    }

    @Test func multipartFormsParse() throws {
        let form = TestHTTPClient.form(file: [1, 2, 3, 13, 10, 45, 45], filename: "x.png")
        let boundary = try #require(MultipartForm.boundary(contentType: form.contentType))
        let parsed = try MultipartForm(body: form.body, boundary: boundary)
        #expect(parsed.parts.count == 2)
        #expect(parsed.file.map { Array($0.body) } == [1, 2, 3, 13, 10, 45, 45])
        #expect(parsed.file?.filename == "x.png")
        #expect(MultipartForm.boundary(contentType: "image/png") == nil)
        #expect(MultipartForm.boundary(contentType: "multipart/form-data; boundary=\"q q\"") == "q q")
        for broken in ["", "--b", "--b\r\nno end of headers", "--b\r\n\r\nno closing boundary"] {
            #expect(throws: MultipartError.self) { try MultipartForm(body: Array(broken.utf8), boundary: "b") }
        }
    }

    @Test func uploadNamesAreCleaned() {
        #expect(IngestFolders.safeName("../../etc/passwd") == "passwd")
        #expect(IngestFolders.safeName("..hidden") == "hidden")
        #expect(IngestFolders.safeName("a b\u{0}c.jpg") == "a_b_c.jpg")
        #expect(IngestFolders.safeName(nil) == "upload")
        #expect(IngestFolders.safeName(String(repeating: "x", count: 500)).count == 120)
    }

    /// What each crash point leaves is finished at startup: a spool file taken but not queued
    /// is queued; an upload never acknowledged is dropped; a finished job's file is settled;
    /// a waiting job's file stays; temporary files and orphan sidecars go.
    @Test func reconcilingFinishesWhatACrashLeftHalfDone() throws {
        let folder = TestPaths.scratch("reconcile")
        let store = try LMDBStore.open(path: folder + "/store", options: StoreOptions(create: true))
        let folders = try IngestFolders(uploads: folder + "/uploads", spool: folder + "/spool")
        let model = Digest.sha256(Array("model".utf8))
        let intake = IngestIntake(queue: store.jobs, folders: folders, model: model, maximumQueue: 100, wake: {})
        let collection = folder + "/spool/c"
        try FileManager.default.createDirectory(atPath: collection, withIntermediateDirectories: true)
        func spoolFile(_ name: String) throws -> IngestFolders.QueuedFile {
            try Data(name.utf8).write(to: URL(fileURLWithPath: "\(collection)/\(name)"))
            return try folders.takeSpoolFile("\(collection)/\(name)", collection: collection)
        }
        let notQueued = try spoolFile("a.jpg")                                          // crash before enqueue
        let waiting = try spoolFile("b.jpg")
        try intake.enqueue(waiting, collection: "c")                                     // queued, not done
        let finished = try spoolFile("c.jpg")
        let finishedJob = try intake.enqueue(finished, collection: "c")                  // done, crash before the move
        let unacknowledged = try folders.storeUpload([1, 2, 3], name: "u.jpg")           // crash before enqueue
        try Data().write(to: URL(fileURLWithPath: folder + "/uploads/.tmp-\(UUID().uuidString)"))
        try Data("9\n".utf8).write(to: URL(fileURLWithPath: folder + "/uploads/\(UUID().uuidString.lowercased()).job"))
        let claimed = try store.jobs.claim(worker: "w", limit: 10, lease: 60)
        let finishedClaim = try #require(claimed.first { $0.id == finishedJob })
        try store.jobs.finish([JobOutcome(id: finishedClaim.id, state: .done)], worker: "w")
        try store.jobs.release(claimed.map(\.id).filter { $0 != finishedJob }, worker: "w")

        let reconciled = try intake.reconcile()
        #expect(reconciled == IngestIntake.Reconciled(enqueued: 1, settled: 1, discarded: 2))
        #expect(FileManager.default.fileExists(atPath: notQueued.sidecar))
        #expect(FileManager.default.fileExists(atPath: waiting.path) && FileManager.default.fileExists(atPath: waiting.sidecar))
        #expect(FileManager.default.fileExists(atPath: collection + "/done/c.jpg") && !FileManager.default.fileExists(atPath: finished.path))
        #expect(!FileManager.default.fileExists(atPath: unacknowledged.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder + "/uploads").isEmpty)
        #expect(try store.jobs.jobs(collection: "c", after: nil, limit: 10).map(\.job.source) == [waiting.path, finished.path, notQueued.path])
        #expect(try intake.reconcile() == IngestIntake.Reconciled())  // a second pass has nothing to do
    }
}
