import ArgumentParser
import Foundation
import VoCoStore
import VoCoStoreLMDB
import VoCoStoreRedis

/// `voco inspect ...`: see and check what a store holds.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "See and check what a VoCo store holds: stats, ls, show, verify, export, rm, rm-record, gc, salvage.",
        subcommands: [
            InspectStatsCommand.self,
            InspectListCommand.self,
            InspectShowCommand.self,
            InspectVerifyCommand.self,
            InspectExportCommand.self,
            InspectRemoveCommand.self,
            InspectRemoveRecordCommand.self,
            InspectGCCommand.self,
            InspectSalvageCommand.self,
            InspectDumpCommand.self,
        ]
    )
}

// MARK: - Shared options

struct StoreLocation: ParsableArguments {
    @Option(name: .customLong("store"), help: ArgumentHelp(
        "The store: a directory (LMDB), or redis://host:port[,host:port...][/name][?password=...] for a store on a Redis Cluster (default: $VOCO_STORE, else ~/.local/share/voco/store).",
        valueName: "dir-or-url"))
    var store: String?

    var path: String { store ?? LMDBStore.defaultPath }

    /// Opens the existing store: for writing through LMDB, or read-only through the page
    /// reader that checks every page it reads (a damaged store is an error, never a crash);
    /// a `redis://` URL opens the store on that cluster.
    func open(writable: Bool = false) throws -> CacheStore {
        try Self.open(path, options: StoreOptions(readOnly: !writable))
    }

    /// Opens the store a --store value names, whatever its backend: a `redis://` URL is a store
    /// on a Redis Cluster (docs/store-redis.md), anything else an LMDB directory. What the
    /// cluster's settings check warns about goes to standard error.
    static func open(_ location: String, options: StoreOptions) throws -> CacheStore {
        guard RedisStoreURL.isRedis(location) else { return try LMDBStore.open(path: location, options: options) }
        let backend = try RedisStore(url: RedisStoreURL(location), options: options)
        for warning in backend.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        return CacheStore(backend: backend)
    }

    /// Opens the store read-only for verify and salvage: damage is reported, not refused (a
    /// store on a cluster has no pages to be damaged: it opens as any other).
    func openForensic() throws -> CacheStore {
        if RedisStoreURL.isRedis(path) { return try Self.open(path, options: StoreOptions(readOnly: true)) }
        return try LMDBStore.open(path: path, options: StoreOptions(readOnly: true), lmdb: LMDBOptions(reads: .forensic))
    }
}

/// Picks the one record an image (and model) prefix names.
struct RecordSelection: ParsableArguments {
    @Argument(help: "The image digest, or a unique prefix of it (hex).")
    var image: String

    @Option(help: "The model fingerprint, or a unique prefix (needed when several models have a record for the image).")
    var model: String?

    func resolve(in store: CacheStore) throws -> RecordKey {
        let imagePrefix = image.lowercased(), modelPrefix = model?.lowercased()
        var matches: [RecordKey] = []
        // Keys only: a record whose bytes are damaged can still be named (and removed).
        try store.read { txn in
            try txn.readTransaction.scanRecords(model: nil) { k, _ in
                if let key = RecordKey(k), key.image.hex.hasPrefix(imagePrefix), modelPrefix.map({ key.model.hex.hasPrefix($0) }) ?? true {
                    matches.append(key)
                }
                return true
            }
        }
        guard let first = matches.first else {
            throw CommandFailure("\(store.location): no record for image \(image)\(model.map { " and model \($0)" } ?? ""); `voco inspect ls NAME` lists a collection's images")
        }
        guard matches.count == 1 else {
            let images = Set(matches.map(\.image)).count
            let what = images > 1 ? "\(images) images start with \(image); give more digits" : "\(matches.count) models have a record for this image; pass --model"
            throw CommandFailure("\(store.location): \(what) (\(matches.prefix(5).map(\.description).joined(separator: ", ")))")
        }
        return first
    }
}

/// A command that could not do its job (not a usage mistake): printed as `Error: ...`, exit 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Printing

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// 1536 -> "1.5 KiB".
func byteCount(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(n), unit = 0
    while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
}

/// Left-aligned columns.
func table(_ rows: [[String]]) -> String {
    guard let width = rows.map(\.count).max() else { return "" }
    let widths = (0..<width).map { c in rows.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { c, cell in c == row.count - 1 ? cell : cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}
