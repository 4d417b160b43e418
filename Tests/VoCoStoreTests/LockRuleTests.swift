import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreLMDB

/// One lock file per store: `lock.mdb` deleted under a process that has the store open must not
/// lead to two processes writing through two lock files (LMDB cannot tell).
@Suite struct LockRuleTests {
    @Test func aSecondLockFileIsRefusedInThisProcessAndTheFirstStopsWriting() throws {
        let store = try makeStore()
        try store.write { try $0.append([SyntheticKV.imageDigest(1)], to: "c") }
        try FileManager.default.removeItem(atPath: store.path + "/lock.mdb")
        // A second environment would make a new lock.mdb: refused while the first is open.
        #expect { _ = try LMDBStore.open(path: store.path) } throws: { error in
            guard case let .storeInUse(path, reason) = error as? StoreError else { return false }
            return path == store.path && reason.contains("lock file that is no longer its lock.mdb")
        }
        #expect { try store.write { try $0.append([SyntheticKV.imageDigest(2)], to: "c") } } throws: { error in
            guard case let .storeInUse(_, reason) = error as? StoreError else { return false }
            return reason.contains("lock.mdb was deleted or replaced")
        }
    }

    @Test func aWriterInAnotherProcessIsNotJoinedByASecondLockFile() throws {
        let path = temporaryDirectory()
        #expect(try voco("debug", "store-fill", "--store", path, "--create", "--records", "4").status == 0)
        // A writer that writes one record, holds the store open 5 s, then writes again.
        let first = try startProcess(vocoExecutable(), ["debug", "store-fill", "--store", path, "--records", "2", "--batch", "1",
                                                         "--first", "100", "--pause-ms", "5000", "--collection", "first"])
        func members(_ collection: String) throws -> Int {
            let page = try voco("inspect", "ls", collection, "--store", path, "--json")
            return (try? JSONSerialization.jsonObject(with: Data(page.output.utf8)) as? [String: Any])?["total"] as? Int ?? 0
        }
        while try members("first") == 0 { usleep(20000) }
        try FileManager.default.removeItem(atPath: path + "/lock.mdb")
        let second = try voco("debug", "store-fill", "--store", path, "--records", "3", "--first", "200", "--collection", "second")
        #expect(!second.signaled && second.status == 1 && second.error.contains("lock.mdb was deleted or replaced"), "\(second.error)")
        let firstResult = try first.finish(timeout: 60)
        #expect(!firstResult.signaled && firstResult.status == 1 && firstResult.error.contains("lock.mdb was deleted or replaced"), "\(firstResult.error)")
        // Nobody wrote through two lock files: the store is whole, with the first write only.
        #expect(try voco("inspect", "verify", "--store", path).status == 0)
        #expect(try members("first") == 1)
        #expect(try members("second") == 0)
        // With every process gone, the store opens and takes writes again.
        #expect(try voco("debug", "store-fill", "--store", path, "--records", "1", "--first", "300", "--collection", "second").status == 0)
    }
}
