import Foundation
import Testing
@testable import VoCoStore
@testable import VoCoStoreLMDB

/// The fault harness: a store made here, damaged in many ways (bit flips in every kind of page,
/// truncations, zeroed pages), and after each damage every read command of the built `voco` run
/// as a user runs it. Asserted for every case: no command dies by a signal or hangs; when what
/// LMDB itself reads of the store differs from the undamaged store (or LMDB cannot read it),
/// `verify` reports damage; when a command exits 0 with output that differs from the undamaged
/// store's, `verify` reports damage; what `salvage` copies is exactly what the undamaged store
/// held, and the new store verifies. One to two minutes; `VOCO_CORRUPTION_CASES=N` runs N cases (a
/// longer soak), `VOCO_CORRUPTION_SEED` another selection.
@Suite struct CorruptionHarnessTests {
    // MARK: - The store

    static let smallModel = ["--layers", "2", "--kv-heads", "2", "--head-dim", "8", "--tokens", "1", "--dtype", "F16", "--model-seed", "1"]
    static let bigModel = ["--layers", "4", "--kv-heads", "4", "--head-dim", "64", "--tokens", "8", "--dtype", "F32", "--model-seed", "2"]

    /// Small records inline in leaf pages (two levels of records), big ones on overflow pages,
    /// jobs in every job state, and free pages left by gc.
    static func makeStore() throws -> String {
        let path = temporaryDirectory("pristine")
        func fill(_ args: [String]) throws {
            let result = try runProcess(vocoExecutable(), ["debug", "store-fill", "--store", path] + args)
            guard result.status == 0 else { throw StoreError.invalidArgument("store-fill: \(result.error)") }
        }
        try fill(["--create", "--records", "120", "--batch", "40", "--collection", "small"] + smallModel)
        try fill(["--records", "6", "--batch", "3", "--first", "1000", "--collection", "big"] + bigModel)
        try fill(["--records", "30", "--batch", "30", "--first", "2000", "--collection", "gone"] + smallModel)
        let store = try LMDBStore.open(path: path)
        let model = SyntheticKV.model(layers: 2, kvHeads: 2, headDim: 8, tokensPerImage: 1, dtype: .f16, seed: 1).fingerprint
        try store.jobs.enqueue((0..<5).map { IngestJob(collection: "small", source: "job-\($0).png", model: model) })
        let claimed = try store.jobs.claim(worker: "harness", limit: 2, lease: 3600)
        try store.jobs.finish([JobOutcome(id: claimed[0].id, state: .done)], worker: "harness")
        try store.write { _ = try $0.removeCollection("gone") }
        _ = try store.gc()
        return path
    }

    // MARK: - Where the pages are

    struct PageInfo {
        let database: String
        let kind: String  // meta, branch, leaf, overflow, free
        let number: UInt64
        let count: Int
        /// Start of a branch or leaf page's node area.
        let upper: Int
    }

    static func pageMap(_ path: String) throws -> (pages: [PageInfo], pageSize: Int, fileSize: Int) {
        let file = try LMDBDataFile(storePath: path)
        let mapping = try file.mapping()
        let meta = try LMDBFileCheck.currentMeta(LMDBDataFile.metas(in: mapping), storePath: path, fileSize: mapping.count)
        let pages = try LMDBPages(mapping: mapping, meta: meta)
        var out = [PageInfo(database: "meta", kind: "meta", number: 0, count: 1, upper: 0),
                   PageInfo(database: "meta", kind: "meta", number: 1, count: 1, upper: 0)]
        func walk(_ tree: LMDBTree) throws {
            try tree.walk(onPage: { event in
                let upper = event.kind == .overflow ? 0 : Int((try? pages.page(event.number).view.u16(14)) ?? 0)
                out.append(PageInfo(database: tree.name, kind: "\(event.kind)", number: event.number, count: event.pages, upper: upper))
            }) { _, _ in true }
        }
        let main = LMDBTree(pages: pages, record: meta.main, name: "main")
        try walk(main)
        try walk(LMDBTree(pages: pages, record: meta.free, name: "free"))
        for name in LMDBStore.databaseNames {
            if let record = try main.subDatabase(named: name) { try walk(LMDBTree(pages: pages, record: record, name: name)) }
        }
        try LMDBTree(pages: pages, record: meta.free, name: "free").walk { _, v in
            for page in FreeList.pages(v) ?? [] { out.append(PageInfo(database: "-", kind: "unused", number: page, count: 1, upper: 0)) }
            return true
        }
        return (out, meta.pageSize, mapping.count)
    }

    // MARK: - Damage

    enum Damage: CustomStringConvertible {
        case flip(offset: Int, mask: UInt8, what: String)
        case truncate(Int)
        case zero(page: Int, pageSize: Int, what: String)

        var description: String {
            switch self {
            case let .flip(offset, mask, what): return "flip \(String(mask, radix: 16)) at \(offset) (\(what))"
            case let .truncate(size): return "truncate to \(size)"
            case let .zero(page, _, what): return "zero page \(page) (\(what))"
            }
        }

        func apply(to file: String) throws {
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: file))
            defer { try? handle.close() }
            switch self {
            case let .flip(offset, mask, _):
                try handle.seek(toOffset: UInt64(offset))
                let byte = try handle.read(upToCount: 1)?.first ?? 0
                try handle.seek(toOffset: UInt64(offset))
                try handle.write(contentsOf: [byte ^ mask])
            case let .truncate(size):
                try handle.truncate(atOffset: UInt64(size))
            case let .zero(page, pageSize, _):
                try handle.seek(toOffset: UInt64(page * pageSize))
                try handle.write(contentsOf: [UInt8](repeating: 0, count: pageSize))
            }
        }
    }

    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {  // SplitMix64
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Damage over every kind of page of every database, then truncations and zeroed pages.
    static func cases(_ map: (pages: [PageInfo], pageSize: Int, fileSize: Int), count: Int, seed: UInt64) -> [Damage] {
        var rng = Generator(state: seed)
        let psize = map.pageSize
        func bit() -> UInt8 { UInt8(1) << UInt8.random(in: 0..<8, using: &rng) }
        var flips: [Damage] = []
        // Meta pages: every field LMDB or VoCo Store reads.
        let metaFields = [(10, "flags"), (16, "magic"), (20, "version"), (34, "map size"), (40, "page size"), (44, "free flags"),
                          (46, "free depth"), (72, "free entries"), (80, "free root"), (92, "main flags"), (94, "main depth"),
                          (120, "main entries"), (128, "main root"), (136, "last page"), (144, "txnid")]
        for page in 0...1 {
            for (offset, name) in metaFields { flips.append(.flip(offset: page * psize + offset, mask: bit(), what: "meta \(page) \(name)")) }
        }
        // Tree pages: header fields, node offsets, node headers, keys and values.
        var byKind: [String: [PageInfo]] = [:]
        for page in map.pages where page.kind != "meta" { byKind["\(page.database) \(page.kind)", default: []].append(page) }
        for (kind, pages) in byKind.sorted(by: { $0.key < $1.key }) {
            for page in pages.shuffled(using: &rng).prefix(1) {
                let base = Int(page.number) * psize
                let what = "\(kind) page \(page.number)"
                switch page.kind {
                case "overflow":
                    flips.append(.flip(offset: base + [0, 10, 12].randomElement(using: &rng)!, mask: bit(), what: what + " header"))
                    flips.append(.flip(offset: base + Int.random(in: 16..<(psize * page.count), using: &rng), mask: bit(), what: what + " value"))
                case "unused":
                    flips.append(.flip(offset: base + Int.random(in: 0..<psize, using: &rng), mask: bit(), what: what))
                default:
                    flips.append(.flip(offset: base + [0, 10, 12, 14].randomElement(using: &rng)!, mask: bit(), what: what + " header"))
                    flips.append(.flip(offset: base + 16 + Int.random(in: 0..<2, using: &rng), mask: bit(), what: what + " node offset"))
                    for _ in 0..<2 {
                        let offset = Int.random(in: max(16, page.upper)..<psize, using: &rng)
                        flips.append(.flip(offset: base + offset, mask: bit(), what: what + " nodes"))
                    }
                }
            }
        }
        var zeroed: [Damage] = [.zero(page: 0, pageSize: psize, what: "meta 0"), .zero(page: 1, pageSize: psize, what: "meta 1")]
        for (kind, pages) in byKind.sorted(by: { $0.key < $1.key }) {
            if let page = pages.randomElement(using: &rng) { zeroed.append(.zero(page: Int(page.number), pageSize: psize, what: kind)) }
        }
        let size = map.fileSize
        var truncations: [Damage] = [0, 1, 100, 151, psize - 1, psize, 2 * psize - 1, 2 * psize, 2 * psize + 1, size - psize, size - 1].map { .truncate($0) }
        for _ in 0..<6 { truncations.append(.truncate(Int.random(in: (2 * psize)..<size, using: &rng))) }
        // More random flips anywhere, for longer soaks.
        var extra: [Damage] = []
        while flips.count + zeroed.count + truncations.count + extra.count < count {
            extra.append(.flip(offset: Int.random(in: 0..<size, using: &rng), mask: UInt8.random(in: 1...255, using: &rng), what: "random"))
        }
        return flips + zeroed + truncations + extra
    }

    // MARK: - Running the commands

    struct Outcome {
        var results: [String: ProcessResult] = [:]
        var exported: Data?
    }

    /// Every read command on the store at `path`, outputs with the path replaced by STORE.
    static func runCommands(_ path: String, work: String, big: String, small: String) throws -> Outcome {
        let commands: [(String, [String])] = [
            ("stats", ["inspect", "stats", "--json"]),
            ("ls", ["inspect", "ls", "--json"]),
            ("ls small", ["inspect", "ls", "small", "--limit", "500", "--json"]),
            ("show", ["inspect", "show", big, "--json"]),
            ("export", ["inspect", "export", small, "--output", work + "/export.safetensors"]),
            ("verify", ["inspect", "verify", "--json"]),
            ("salvage", ["inspect", "salvage", "--to", work + "/salvaged", "--json"]),
            ("dump", ["inspect", "dump"]),
        ]
        var outcome = Outcome()
        for (name, arguments) in commands {
            var result = try runProcess(vocoExecutable(), arguments + ["--store", path], timeout: 60)
            result.output = result.output.replacingOccurrences(of: path, with: "STORE").replacingOccurrences(of: work, with: "WORK")
            // The map size is a setting in the meta page that LMDB grows as needed, not data: a
            // change to it shows in stats but nowhere else, and nothing can tell it from a resize.
            if name == "stats" { result.output = result.output.split(separator: "\n").filter { !$0.contains("\"mapSize\"") }.joined(separator: "\n") }
            outcome.results[name] = result
            if name == "export", result.status == 0 { outcome.exported = FileManager.default.contents(atPath: work + "/export.safetensors") }
        }
        if outcome.results["salvage"]?.status == 0 {
            outcome.results["salvaged dump"] = try runProcess(vocoExecutable(), ["inspect", "dump", "--store", work + "/salvaged"], timeout: 60)
        }
        return outcome
    }

    // MARK: - The harness

    @Test(.timeLimit(.minutes(20))) func noDamageCrashesAReadCommandAndVerifyReportsWhatMatters() throws {
        let environment = ProcessInfo.processInfo.environment
        let pristine = try Self.makeStore()
        let map = try Self.pageMap(pristine)
        let damages = Self.cases(map, count: environment["VOCO_CORRUPTION_CASES"].flatMap(Int.init) ?? 0,
                                 seed: environment["VOCO_CORRUPTION_SEED"].flatMap(UInt64.init) ?? 15)
        let big = SyntheticKV.imageDigest(1000).hex, small = SyntheticKV.imageDigest(7).hex
        let baseWork = temporaryDirectory("baseline")
        try FileManager.default.createDirectory(atPath: baseWork, withIntermediateDirectories: true)
        let baseline = try Self.runCommands(pristine, work: baseWork, big: big, small: small)
        for (name, result) in baseline.results {
            #expect(result.status == 0, "baseline \(name): \(result.error)")
        }
        let baselineDump = Set(baseline.results["dump"]?.output.split(separator: "\n").map(String.init) ?? [])
        // When the newest meta page is damaged, salvage reads the one before it: the store as the
        // previous transaction left it. What LMDB reads of that (its transaction id raised, so
        // that LMDB takes it) is also a right answer for salvage.
        let previous = temporaryDirectory("previous")
        try FileManager.default.createDirectory(atPath: previous, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: pristine + "/data.mdb", toPath: previous + "/data.mdb")
        let metas = try LMDBDataFile.metas(in: try LMDBDataFile(storePath: previous).mapping()).map { try $0.get() }
        let older = metas.min { $0.txnid < $1.txnid }!, newer = metas.max { $0.txnid < $1.txnid }!
        let raise = Damage.flip(offset: older.index * map.pageSize + 144, mask: UInt8(truncatingIfNeeded: older.txnid ^ (newer.txnid + 1)), what: "")
        try raise.apply(to: previous + "/data.mdb")
        let previousDump = try runProcess(vocoExecutable(), ["inspect", "dump", "--store", previous], timeout: 60)
        #expect(previousDump.status == 0, "\(previousDump.error)")
        let salvageable = baselineDump.union(previousDump.output.split(separator: "\n").map(String.init))

        struct Tally {
            var cases = 0, runs = 0, lmdbCrashed = 0, mattered = 0, verifyDetected = 0, verifyAlarmsOnly = 0
            var refusedByName = 0, salvaged = 0
            var problems: [String] = [], salvageRefused: [String] = []
        }
        let tally = Mutex(Tally())
        let started = Date()
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            for (index, damage) in damages.enumerated() where index % 2 == worker {
                do {
                    let work = temporaryDirectory("case-\(index)")
                    let store = work + "/store"
                    try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
                    try FileManager.default.copyItem(atPath: pristine + "/data.mdb", toPath: store + "/data.mdb")
                    try damage.apply(to: store + "/data.mdb")
                    let outcome = try Self.runCommands(store, work: work, big: big, small: small)
                    var problems: [String] = []
                    let verify = outcome.results["verify"]!
                    let dump = outcome.results["dump"]!
                    let matters = dump.status != 0 || Set(dump.output.split(separator: "\n").map(String.init)) != baselineDump
                    var differs = false
                    for (name, result) in outcome.results where name != "dump" && name != "salvaged dump" {
                        if result.signaled || result.timedOut {
                            problems.append("\(name) \(result.timedOut ? "hung" : "died by signal \(result.status)"): \(result.error.suffix(300))")
                        }
                        if result.status == 0, ["stats", "ls", "ls small", "show", "export"].contains(name),
                           result.output != baseline.results[name]?.output || (name == "export" && outcome.exported != baseline.exported) {
                            differs = true
                        }
                    }
                    if matters || differs, verify.status != 1 {
                        problems.append("verify exited \(verify.status) though \(matters ? "what LMDB reads changed" : "a command's output changed")")
                    }
                    if let salvage = outcome.results["salvage"], salvage.status == 0 {
                        let copied = outcome.results["salvaged dump"]?.output.split(separator: "\n").map(String.init) ?? []
                        let foreign = copied.filter { ["records", "images", "models"].contains($0.split(separator: " ").first ?? "") && !salvageable.contains($0) }
                        if !foreign.isEmpty { problems.append("salvage copied \(foreign.count) entries the undamaged store did not hold: \(foreign[0])") }
                    }
                    tally.withLock { t in
                        t.cases += 1
                        t.runs += outcome.results.count
                        if dump.signaled { t.lmdbCrashed += 1 }
                        if matters { t.mattered += 1 }
                        if matters, verify.status == 1 { t.verifyDetected += 1 }
                        if !matters, !differs, verify.status == 1 { t.verifyAlarmsOnly += 1 }
                        if outcome.results.values.contains(where: { $0.status == 1 && $0.error.contains(store) }) { t.refusedByName += 1 }
                        if let salvage = outcome.results["salvage"] {
                            if salvage.status == 0 { t.salvaged += 1 } else {
                                t.salvageRefused.append("case \(index) (\(damage)): \((salvage.error + salvage.output).prefix(160))")
                            }
                        }
                        t.problems += problems.map { "case \(index) (\(damage)): \($0)" }
                    }
                    try? FileManager.default.removeItem(atPath: work)
                } catch {
                    tally.withLock { $0.problems.append("case \(index) (\(damage)): \(error)") }
                }
            }
        }
        let t = tally.withLock { $0 }
        print("""
            corruption harness: \(t.cases) cases (\(damages.count { if case .flip = $0 { true } else { false } }) bit flips, \
            \(damages.count { if case .truncate = $0 { true } else { false } }) truncations, \
            \(damages.count { if case .zero = $0 { true } else { false } }) zeroed pages) over a \(map.fileSize)-byte store of \
            \(map.pages.count) pages, \(t.runs) command runs in \(Int(Date().timeIntervalSince(started))) s; \
            LMDB itself (voco inspect dump) died by a signal in \(t.lmdbCrashed); the damage changed what LMDB reads in \(t.mattered), \
            verify reported \(t.verifyDetected) of those, and reported damage in \(t.verifyAlarmsOnly) more whose reads were unchanged; \
            \(t.refusedByName) cases refused by name; salvage ran in \(t.salvaged); problems: \(t.problems.count)
            """)
        print("salvage refused:\n" + t.salvageRefused.sorted().joined(separator: "\n"))
        #expect(t.problems.isEmpty, "\(t.problems.prefix(12).joined(separator: "\n"))")
        #expect(t.cases == damages.count)
    }
}

/// A value behind a lock (Synchronization's Mutex needs macOS 15; this is all the harness needs).
final class Mutex<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
