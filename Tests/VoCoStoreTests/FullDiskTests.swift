import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreLMDB

/// A store that cannot grow: the file-size limit (always tested) and a full file system (a
/// 1 MiB tmpfs, when the tests run as root and may mount one). Each write that does not fit is
/// refused by name, not with a signal; what was committed before stays whole.
@Suite struct FullDiskTests {
    /// Synthetic records of ~64 KiB each (F32, barely compressible): 4 per write.
    static let bigRecords = ["--layers", "4", "--kv-heads", "4", "--head-dim", "64", "--tokens", "8", "--dtype", "F32", "--batch", "4"]

    private func records(_ path: String) throws -> Int {
        let stats = try voco("inspect", "stats", "--store", path, "--json")
        return try #require((try JSONSerialization.jsonObject(with: Data(stats.output.utf8)) as? [String: Any])?["records"] as? Int)
    }

    @Test func theFileSizeLimitStopsAWriteByNameAndKeepsWhatWasStored() throws {
        let path = temporaryDirectory()
        // ulimit -f counts 1024-byte blocks: data.mdb may not grow past 1 MiB.
        let limited = try runProcess("/bin/bash", ["-c", "ulimit -f 1024; exec \"$0\" \"$@\"", vocoExecutable(),
                                                   "debug", "store-fill", "--store", path, "--create", "--records", "100"] + Self.bigRecords, timeout: 120)
        #expect(!limited.signaled && limited.status == 1, "status \(limited.status), signal: \(limited.signaled): \(limited.error)")
        #expect(limited.error.contains(path) && limited.error.contains("file-size limit"), "\(limited.error)")
        let kept = try records(path)
        #expect(kept > 0 && kept < 100 && kept % 4 == 0)
        #expect(try voco("inspect", "verify", "--store", path).status == 0)
        // Without the limit the same store takes the rest.
        let more = try voco(["debug", "store-fill", "--store", path, "--records", "8", "--first", "500"] + Self.bigRecords)
        #expect(more.status == 0, "\(more.error)")
        #expect(try records(path) == kept + 8)
        #expect(try voco("inspect", "verify", "--store", path).status == 0)
    }

    @Test func aFullFileSystemIsRefusedByNameAndLosesNothing() throws {
        let mountPoint = temporaryDirectory("tmpfs")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        guard getuid() == 0, (try? runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountPoint]))?.status == 0 else {
            print("skipped: cannot mount a 1 MiB tmpfs here (needs root)")
            return
        }
        defer { _ = try? runProcess("/bin/umount", [mountPoint]) }
        // 256 KiB of something else, then a store that fills the rest.
        let filler = mountPoint + "/filler"
        try Data(count: 256 << 10).write(to: URL(fileURLWithPath: filler))
        let path = mountPoint + "/store"
        let full = try runProcess(vocoExecutable(), ["debug", "store-fill", "--store", path, "--create", "--records", "100"] + Self.bigRecords, timeout: 120)
        #expect(!full.signaled && full.status == 1 && full.error.contains(path) && full.error.contains("no space left"), "\(full.error)")
        let kept = try records(path)
        #expect(kept > 0 && kept % 4 == 0)
        #expect(try voco("inspect", "verify", "--store", path).status == 0)
        // Space freed: the same store goes on.
        try FileManager.default.removeItem(atPath: filler)
        let more = try voco(["debug", "store-fill", "--store", path, "--records", "4", "--first", "500"] + Self.bigRecords)
        #expect(more.status == 0, "\(more.error)")
        #expect(try records(path) == kept + 4)
        #expect(try voco("inspect", "verify", "--store", path).status == 0)
        // Creating a store on a full file system (LMDB's lock file faulted here) is refused too,
        // and leaves no half-made store behind.
        let rest = mountPoint + "/rest"
        _ = try runProcess("/bin/sh", ["-c", "dd if=/dev/zero of=\(rest) bs=4096 2>/dev/null"])
        let created = try runProcess(vocoExecutable(), ["debug", "store-fill", "--store", mountPoint + "/new", "--create", "--records", "1"], timeout: 60)
        #expect(!created.signaled && created.status == 1 && created.error.contains("no space left"), "\(created.error)")
        #expect(!FileManager.default.fileExists(atPath: mountPoint + "/new"))
    }
}
