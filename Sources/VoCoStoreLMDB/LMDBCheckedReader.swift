import CLMDB
import Foundation
import VoCoStore

// MARK: - Snapshots read by VoCo Store's page reader

/// Hands out `LMDBSnapshot`s of one store. When LMDB could open the store, each snapshot is
/// pinned by an LMDB read transaction (its reader slot keeps writers from reusing the pages it
/// reads) and uses that transaction's meta page. Otherwise (`forensic` opens of a store LMDB
/// refuses, or a lockless reader) it uses the meta page it chose when opening.
final class LMDBCheckedReader: @unchecked Sendable {
    let path: String
    let file: LMDBDataFile
    let environment: LMDBEnvironment?
    let names: [MDB_dbi: String]
    /// The meta page used when snapshots are not pinned.
    let fixedMeta: MetaPage?
    /// What opening found wrong (forensic opens only): meta pages, the file's length.
    let openProblems: [VerifyFailure]

    /// `forensic`: never refuse a store for damage, report it in `openProblems` and read what
    /// can be read. Otherwise damage is refused by name as the LMDB backend refuses it.
    init(path: String, names: [MDB_dbi: String], forensic: Bool) throws {
        self.path = path
        self.names = names
        switch try LMDBFileCheck.check(storePath: path, strict: !forensic) {
        case .absent: throw StoreError.noStore(path: path)
        case .empty: throw StoreError.notAStore(path: path, reason: LMDBStore.emptyFileReason)
        case .present: break
        }
        file = try LMDBDataFile(storePath: path)
        let mapping = try file.mapping()
        let metas = LMDBDataFile.metas(in: mapping)
        let shared = FileID(path: file.path).flatMap(OpenStores.environment(for:))
        guard forensic else {
            environment = try shared ?? LMDBEnvironment(path: path, readOnly: true, newMapSize: nil, mapSizeLimit: 1 << 40, maxDatabases: names.count)
            fixedMeta = environment?.lockless == true ? try LMDBFileCheck.currentMeta(metas, storePath: path, fileSize: mapping.count) : nil
            openProblems = []
            return
        }
        if case let .failure(first) = metas[0], case .failure = metas[1], let error = LMDBFileCheck.notLMDB(first, storePath: path, fileSize: mapping.count) {
            throw error
        }
        var (chosen, problems) = Self.chooseMeta(metas, mapping: mapping, path: path)
        for _ in 0..<4 where !problems.isEmpty {  // or a writer's commit, caught half done
            usleep(20_000)
            let again = try file.mapping()
            (chosen, problems) = Self.chooseMeta(LMDBDataFile.metas(in: again), mapping: again, path: path)
        }
        let meta = chosen ?? .empty
        openProblems = problems
        // Pin snapshots with LMDB only when it would read the same meta page.
        environment = problems.isEmpty ? shared ?? (try? LMDBEnvironment(path: path, readOnly: true, newMapSize: nil, mapSizeLimit: 1 << 40, maxDatabases: names.count)) : nil
        fixedMeta = environment == nil || environment?.lockless == true ? meta : nil
    }

    /// The newest meta page that is sound, and what is wrong with the others.
    private static func chooseMeta(_ metas: [Result<MetaPage, PageDamage>], mapping: FileMapping, path: String) -> (MetaPage?, [VerifyFailure]) {
        var problems: [VerifyFailure] = []
        func fail(_ key: String, _ reason: String) { problems.append(VerifyFailure(database: "meta", key: key, reason: reason)) }
        var sound: [MetaPage] = []
        for case let .failure(damage) in metas { fail("page \(damage.page.map(String.init) ?? "?")", damage.reason) }
        for case let .success(meta) in metas {
            if let problem = meta.problems().first { fail("page \(meta.index)", problem) } else { sound.append(meta) }
        }
        if case let .success(m0) = metas[0], case let .success(m1) = metas[1], let problem = LMDBFileCheck.disagreement(m0, m1) {
            fail("pages 0 and 1", problem)
        }
        sound.sort { $0.txnid > $1.txnid }
        guard let chosen = sound.first else {
            fail("-", "no sound meta page: nothing can be read")
            return (nil, problems)
        }
        let newest = metas.compactMap { try? $0.get() }.max { $0.txnid < $1.txnid }
        if let newest, newest.txnid > chosen.txnid {
            fail("page \(newest.index)", "the newest meta page (transaction \(newest.txnid)) is damaged; reading the one of transaction \(chosen.txnid), so the last transaction is lost")
        }
        if let reason = LMDBFileCheck.truncation(meta: chosen, mapping: mapping) { fail("-", reason) }
        return (chosen, problems)
    }

    /// Runs `body` on one snapshot; `onDamage` makes its walks tolerant.
    func read<T>(onDamage: ((String, PageDamage) -> Void)? = nil, _ body: (LMDBSnapshot) throws -> T) throws -> T {
        if let meta = fixedMeta {
            return try body(try snapshot(meta, mapping: try file.mapping(), onDamage: onDamage))
        }
        guard let environment else {
            throw StoreError.damagedPage(path: path, database: "meta", page: nil, reason: "no sound meta page")
        }
        // The meta page of the pinned transaction may be overwritten two commits later: read
        // it at once, and begin again in the rare case it already was.
        for _ in 0..<100 {
            let result = try environment.read { txn -> T? in
                let id = UInt64(mdb_txn_id(txn.txn))
                let mapping = try file.mapping()
                guard let meta = LMDBDataFile.metas(in: mapping).compactMap({ try? $0.get() }).first(where: { $0.txnid == id }) else { return nil }
                return try body(try snapshot(meta, mapping: mapping, onDamage: onDamage))
            }
            if let result { return result }
        }
        throw StoreError.backend(path: path, operation: "reading a snapshot", reason: "its meta page kept changing (a writer commits very fast); try again")
    }

    private func snapshot(_ meta: MetaPage, mapping: FileMapping, onDamage: ((String, PageDamage) -> Void)?) throws -> LMDBSnapshot {
        let pages: LMDBPages
        do { pages = try LMDBPages(mapping: mapping, meta: meta) } catch let damage as PageDamage {
            throw StoreError.damagedPage(path: path, database: "meta", page: damage.page, reason: damage.reason)
        }
        let snapshot = LMDBSnapshot(path: path, pages: pages, meta: meta, names: names)
        snapshot.onDamage = onDamage
        return snapshot
    }
}
