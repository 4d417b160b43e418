import CLMDB
import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreLMDB

/// VoCo Store's reader of LMDB's pages, against LMDB itself: on stores of every shape it must
/// read exactly what LMDB reads, and count what LMDB counts.
@Suite struct PageReaderTests {
    /// Every entry of every database, read by LMDB and by the page reader.
    private func dumps(_ path: String) throws -> (lmdb: [String], pages: [String]) {
        func dump(_ reads: LMDBOptions.Reads) throws -> [String] {
            var lines: [String] = []
            try LMDBStore(path: path, options: StoreOptions(readOnly: true), lmdb: LMDBOptions(reads: reads)).dumpEntries { db, k, v in
                lines.append("\(db) \(Digest.hexString(k)) \(Digest.sha256(v).hex)")
            }
            return lines
        }
        return (try dump(.lmdb), try dump(.checked))
    }

    /// LMDB's own statistics of each named database, against the records the page reader reads.
    private func expectSameCounts(_ path: String) throws {
        let store = try LMDBStore(path: path, options: StoreOptions(readOnly: true), lmdb: LMDBOptions(reads: .lmdb))
        let environment = try #require(store.environment)
        let handles = try environment.openDatabases(LMDBStore.databaseNames, create: false)
        let checked = try LMDBStore(path: path, options: StoreOptions(readOnly: true), lmdb: LMDBOptions(reads: .checked))
        try checked.access.checked!.read { snapshot in
            for name in LMDBStore.databaseNames {
                let record = try #require(try snapshot.mainTree.subDatabase(named: name))
                let stat = try environment.read { txn -> MDB_stat in
                    var stat = MDB_stat()
                    mdb_stat(txn.txn, handles[name]!, &stat)
                    return stat
                }
                #expect(Int(record.depth) == Int(stat.ms_depth) && Int(record.entries) == stat.ms_entries, "\(name)")
                #expect(Int(record.branchPages) == stat.ms_branch_pages && Int(record.leafPages) == stat.ms_leaf_pages
                        && Int(record.overflowPages) == stat.ms_overflow_pages, "\(name)")
            }
        }
    }

    @Test(arguments: [
        ["--records", "1"],                                                   // one leaf per database
        ["--records", "600", "--batch", "50"],                                // deeper trees of small records
        ["--records", "40", "--batch", "7", "--layers", "4", "--kv-heads", "4", "--head-dim", "64", "--tokens", "8", "--dtype", "F32"],  // overflow pages
    ])
    func thePageReaderReadsWhatLMDBReads(_ fill: [String]) throws {
        let path = temporaryDirectory()
        #expect(try voco(["debug", "store-fill", "--store", path, "--create"] + fill).status == 0)
        // Deletions and a second collection: free pages, rebalanced trees.
        #expect(try voco(["debug", "store-fill", "--store", path, "--first", "5000", "--records", "30", "--collection", "other"]).status == 0)
        #expect(try voco("inspect", "rm", "other", "--store", path).status == 0)
        #expect(try voco("inspect", "gc", "--store", path).status == 0)
        let (lmdb, pages) = try dumps(path)
        #expect(lmdb.count >= 8 && lmdb == pages)
        try expectSameCounts(path)
        let verify = try LMDBStore.open(path: path, options: StoreOptions(readOnly: true), lmdb: LMDBOptions(reads: .forensic)).verify()
        #expect(verify.failures.isEmpty, "\(verify.failures.prefix(3))")
    }

    @Test func crc32cIsCastagnolis() {
        let check = Array("123456789".utf8).withUnsafeBytes { CRC32C.update(0, $0) }
        #expect(check == 0xE306_9283)
        let sealed = ValueSeal.seal(Array("{}".utf8), key: [1, 2])
        #expect(sealed.withUnsafeBytes { (try? ValueSeal.open($0, key: [1, 2]).get())?.count } == 2)
        #expect(sealed.withUnsafeBytes { (try? ValueSeal.open($0, key: [1, 3]).get()) } == nil)
    }

    @Test func aSchema2StoreIsReadAndUpgradedToSealedValues() throws {
        let store = try makeStore()
        let path = store.path
        try store.write { w in
            try w.putImage(SyntheticKV.imageDigest(1), ImageInfo(byteCount: 1, format: "png", width: 1, height: 1, sourceNames: ["a.png"]))
        }
        _ = try store.jobs.enqueue([IngestJob(collection: "c", source: "x.png", model: tinyModel().fingerprint)])
        // Make it what schema 2 wrote: the same values without their checksums.
        let lmdb = store.lmdb, d = lmdb.databases
        try lmdb.environment!.write { txn in
            for dbi in [d.images, d.models, d.jobs, d.meta] {
                var entries: [([UInt8], [UInt8])] = []
                try txn.scan(dbi) { k, v in
                    if !k.elementsEqual("schema_version".utf8) { entries.append((Array(k), Array(v.dropLast(4)))) }
                    return true
                }
                for (k, v) in entries { try txn.put(dbi, k, v) }
            }
            try txn.put(d.meta, Array("schema_version".utf8), Array("2".utf8))
        }
        let readOnly = try LMDBStore.open(path: path, options: StoreOptions(readOnly: true), lmdb: LMDBOptions(reads: .checked))
        #expect(try readOnly.read { try $0.image(SyntheticKV.imageDigest(1))?.sourceNames } == ["a.png"])
        #expect(try readOnly.stats().schemaVersion == 2)
        let upgraded = try LMDBStore.open(path: path)
        #expect(try upgraded.stats().schemaVersion == 3 && upgraded.jobs.counts().queued == 1)
        #expect(try upgraded.verify().failures.isEmpty)
    }

    @Test func hugeNumbersNeverTrap() throws {
        let store = try makeStore()
        try store.write { try $0.append((0..<3).map { SyntheticKV.imageDigest($0) }, to: "c") }
        #expect(try store.read { try $0.members(of: "c", offset: .max, limit: .max) }.isEmpty)
        #expect(try store.read { try $0.members(of: "c", offset: 1, limit: .max) }.count == 2)
        #expect(try store.jobs.jobs(collection: nil, after: JobID("18446744073709551615"), limit: .max).isEmpty)
        #expect(try store.jobs.claim(worker: "w", limit: .max, lease: 1).isEmpty)
        // A header with 32-bit sizes whose product overflows is refused, not trapped on.
        var header = RecordHeader(codec: .zstd, dtype: .f32, keysBeforeRoPE: true, model: SyntheticKV.imageDigest(0), image: SyntheticKV.imageDigest(1),
                                  layers: 1, kvHeads: Int(UInt32.max), headDim: Int(UInt32.max), tokens: 1, firstPosition: 0, groupSize: 0,
                                  bodyLength: 0, payloadLength: 0).encoded()
        header += [UInt8](repeating: 0, count: 32)
        #expect(throws: RecordProblem.self) { try header.withUnsafeBytes { _ = try RecordHeader.decode($0) } }
        let list = try voco("inspect", "ls", "c", "--store", store.path, "--offset", "9223372036854775807")
        #expect(!list.signaled && list.status == 0, "\(list.error)")
    }
}
