import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreLMDB

/// Stores that cannot be opened, opened as a user would open them (the built `voco`): every
/// one is an error that names the store and the problem, with status 1, never a signal.
@Suite struct StoreOpeningTests {
    /// A store of 20 small records, and its data.mdb.
    private func filledStore() throws -> (path: String, data: [UInt8]) {
        let path = temporaryDirectory()
        let fill = try voco("debug", "store-fill", "--store", path, "--create", "--records", "20", "--batch", "10")
        #expect(fill.status == 0, "\(fill.error)")
        return (path, Array(try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb"))))
    }

    private func store(withData bytes: [UInt8], lockDirectory: Bool = false) throws -> String {
        let path = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path + "/data.mdb"))
        if lockDirectory { try FileManager.default.createDirectory(atPath: path + "/lock.mdb", withIntermediateDirectories: false) }
        return path
    }

    /// Runs a read command and a write command on `path`: both must refuse with `expected` in
    /// their message, by exit status 1.
    /// (verify reports on stdout; the others fail on stderr.)
    private func expectRefused(_ path: String, _ expected: String, verify: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let commands = [["inspect", "stats"], ["inspect", "ls", "x"], ["debug", "store-fill", "--records", "1"]] + (verify ? [["inspect", "verify"]] : [])
        for arguments in commands {
            let result = try runProcess(vocoExecutable(), arguments + ["--store", path], timeout: 60)
            let message = result.output + result.error
            #expect(!result.signaled && result.status == 1, "\(arguments): status \(result.status)\(result.signaled ? " (signal)" : ""): \(message)", sourceLocation: sourceLocation)
            #expect(message.contains(path) && message.contains(expected), "\(arguments): \(message)", sourceLocation: sourceLocation)
        }
    }

    @Test func filesThatAreNotAStoreAreRefusedByName() throws {
        try expectRefused(try store(withData: Array("hi\n".utf8)), "is not an LMDB file")
        var random = SystemRandomNumberGenerator()
        try expectRefused(try store(withData: (0..<20000).map { _ in UInt8.random(in: 0...255, using: &random) }), "is not an LMDB file")
        let (_, data) = try filledStore()
        try expectRefused(try store(withData: Array(data.prefix(100))), "shorter than its first meta page: the file was truncated")
        try expectRefused(try store(withData: Array(data.prefix(4096))), "ends before meta page 1")
        // A 0-byte data.mdb is not silently made into a new store (but --create may start over).
        let empty = try store(withData: [])
        try expectRefused(empty, "data.mdb is empty (0 bytes)")
        let created = try voco("debug", "store-fill", "--store", empty, "--create", "--records", "2")
        #expect(created.status == 0, "\(created.error)")
        #expect(try voco("inspect", "verify", "--store", empty).status == 0)
    }

    @Test func aTruncatedStoreIsRefusedAtAnySizeShorterThanItsPages() throws {
        let (_, data) = try filledStore()
        var refused = 0
        for size in Array(stride(from: 8192, to: data.count, by: 4096)) + [data.count - 1] {
            let path = try store(withData: Array(data.prefix(size)))
            let stats = try runProcess(vocoExecutable(), ["inspect", "stats", "--store", path, "--json"], timeout: 60)
            #expect(!stats.signaled, "size \(size): signal \(stats.status)")
            if stats.status == 0 {
                // Only free pages were cut off (LMDB need not write pages it freed at once): the
                // store must then be whole.
                #expect(try voco("inspect", "verify", "--store", path).status == 0, "size \(size)")
            } else {
                try expectRefused(path, "the file was truncated")
                refused += 1
            }
        }
        #expect(refused > 0)
    }

    @Test func aLockFileThatIsADirectoryIsRefusedByName() throws {
        let (_, data) = try filledStore()
        // verify reads data.mdb alone (it needs no lock to read), and finds it whole.
        let path = try store(withData: data, lockDirectory: true)
        try expectRefused(path, "lock.mdb is a directory", verify: false)
        #expect(try voco("inspect", "verify", "--store", path).status == 0)
    }

    @Test func aDamagedMetaPageIsRefusedAndVerifyReportsIt() throws {
        let (_, data) = try filledStore()
        var damaged = data
        damaged[16] ^= 0x01  // meta page 0's magic
        let path = try store(withData: damaged)
        let stats = try voco("inspect", "stats", "--store", path)
        #expect(stats.status == 1 && stats.error.contains("page 0 of the meta database"), "\(stats.error)")
        let verify = try voco("inspect", "verify", "--store", path)
        #expect(verify.status == 1 && verify.output.contains("meta"), "\(verify.output)\(verify.error)")
    }

    @Test func aReadOnlyStoreIsReadableByAUserWhoCannotWriteIt() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            print("skipped: needs root and setpriv to run voco as another user")
            return
        }
        let (path, _) = try filledStore()
        try? FileManager.default.removeItem(atPath: path + "/lock.mdb")
        chmod(path + "/data.mdb", 0o444)
        chmod(path, 0o555)
        defer { chmod(path, 0o755) }
        func asNobody(_ arguments: [String]) throws -> ProcessResult {
            try runProcess("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", vocoExecutable()] + arguments + ["--store", path], timeout: 60)
        }
        let verify = try asNobody(["inspect", "verify"])
        #expect(verify.status == 0 && verify.output.contains("20 records"), "\(verify.error)")
        #expect(try asNobody(["inspect", "ls", "synthetic"]).output.contains("images 1-20 of 20"))
        let write = try asNobody(["debug", "store-fill", "--records", "1"])
        #expect(write.status == 1 && !write.signaled && write.error.contains("permission denied"), "\(write.error)")
        // While a process that may write has the store open, a reader without lock.mdb refuses.
        chmod(path, 0o755)
        let holder = try startProcess(vocoExecutable(), ["debug", "store-fill", "--store", path, "--records", "2", "--batch", "1", "--first", "100", "--pause-ms", "5000"])
        defer { _ = try? holder.finish() }
        func records() throws -> Int? {
            (try JSONSerialization.jsonObject(with: Data(try voco("inspect", "stats", "--store", path, "--json").output.utf8)) as? [String: Any])?["records"] as? Int
        }
        while try records() == 20 { usleep(20000) }  // until its first write is in
        chmod(path + "/lock.mdb", 0o444)
        chmod(path, 0o555)
        let refused = try asNobody(["inspect", "stats"])
        #expect(refused.status == 1 && refused.error.contains("another process has the store open"), "\(refused.error)")
    }

    @Test func exportToADirectorySaysSo() throws {
        let (path, _) = try filledStore()
        let directory = temporaryDirectory("out")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let result = try voco("inspect", "export", SyntheticKV.imageDigest(3).hex, "--store", path, "--output", directory)
        #expect(result.status == 1 && result.error.contains("\(directory) is a directory") && !result.error.contains("NSCocoaErrorDomain"), "\(result.error)")
        let missing = try voco("inspect", "export", SyntheticKV.imageDigest(3).hex, "--store", path, "--output", directory + "/no/such/file.safetensors")
        #expect(missing.status == 1 && missing.error.contains("does not exist"), "\(missing.error)")
    }

    @Test func aDamagedRecordNamesTheCommandThatDeletesIt() throws {
        let (path, _) = try filledStore()
        let model = SyntheticKV.model(layers: 2, kvHeads: 2, headDim: 8, tokensPerImage: 1, dtype: .f16)
        let image = SyntheticKV.imageDigest(4)
        do {
            let store = try LMDBStore.open(path: path)
            try store.write { txn in
                let key = RecordKey(model: model.fingerprint, image: image, codec: .shuffleZstd)
                var bytes = try #require(try txn.readTransaction.recordBytes(key))
                bytes[bytes.count / 2] ^= 1
                try txn.transaction.putRecord(key, bytes)
            }
        }
        let shown = try voco("inspect", "show", image.hex, "--store", path)
        let command = "voco inspect rm-record \(image.hex) --model \(model.fingerprint.hex)"
        #expect(shown.status == 1 && shown.error.contains(command), "\(shown.error)")
        let removed = try voco("inspect", "rm-record", image.hex, "--model", model.fingerprint.hex, "--store", path)
        #expect(removed.status == 0, "\(removed.error)")
        // The record is gone; verify now names its membership without a record, nothing else.
        let verify = try voco("inspect", "verify", "--store", path, "--json")
        let failures = try #require((try JSONSerialization.jsonObject(with: Data(verify.output.utf8)) as? [String: Any])?["failures"] as? [[String: Any]])
        #expect(failures.count == 1 && (failures.first?["reason"] as? String)?.contains("no record") == true, "\(failures)")
        let again = try voco("inspect", "rm-record", image.hex, "--store", path)
        #expect(again.status == 1 && again.error.contains("no record for image"), "\(again.error)")
    }
}
