import ArgumentParser
import Foundation
import VoCoStore
import VoCoStoreLMDB

/// `voco inspect rm-record IMAGE [--model FP]`: deletes one record (a damaged one, typically).
struct InspectRemoveRecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm-record",
        abstract: "Delete one record (for example one that verify refuses); its image entry and memberships stay.",
        discussion: "Name the record by image digest (or a unique prefix) and --model, or by its whole key as verify prints it (--key)."
    )

    @OptionGroup var location: StoreLocation
    @Argument(help: "The image digest, or a unique prefix of it (hex).") var image: String?
    @Option(help: "The model fingerprint, or a unique prefix (needed when several models have a record for the image).") var model: String?
    @Option(help: "The record's whole key in hex (for a key that is not model + image + codec).") var key: String?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (image == nil) != (key == nil) else { throw ValidationError("give either IMAGE (with --model when needed) or --key") }
        if let key, key.count % 2 != 0 || key.count > 2 * 511 || key.isEmpty || !key.allSatisfy(\.isHexDigit) {
            throw ValidationError("--key must be 1 to 511 bytes in hex (got '\(key.prefix(80))')")
        }
    }

    func run() throws {
        var recordKey: RecordKey?
        if let image {
            // Resolved through the page-checking reader (and closed again before LMDB opens the
            // store to write), so that a damaged records tree is refused before LMDB walks it.
            let selection = try RecordSelection.parse([image] + (model.map { ["--model", $0] } ?? []))
            recordKey = try selection.resolve(in: try location.open())
        }
        let store = try location.open(writable: true)
        let described: String
        let removed: Bool
        if let recordKey {
            described = recordKey.description
            removed = try store.write { try $0.deleteRecord(recordKey) }
        } else {
            let hex = key ?? ""
            let bytes = stride(from: 0, to: hex.count, by: 2).map { i -> UInt8 in
                let start = hex.index(hex.startIndex, offsetBy: i)
                return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16) ?? 0
            }
            described = hex.lowercased()
            removed = try store.write { try $0.transaction.deleteRawRecord(bytes) }
        }
        guard removed else { throw CommandFailure("\(store.location): no record \(described)") }
        if json { return try printJSON(["removed": described]) }
        print("removed record \(described); ingest the image again to make a new one")
    }
}

/// `voco inspect salvage --to NEW`: everything that verifies, copied into a new store.
struct InspectSalvageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "salvage",
        abstract: "Copy every record, image entry, membership and model that verifies into a new store, and list what could not be saved.",
        discussion: """
        Reads the damaged store with the page reader (damaged pages are skipped, never crashed on) and writes a new \\
        store with the same codec. Memberships keep their collection's order; an image whose record or entry was \\
        lost leaves its collections and is listed, to be ingested again. Jobs not yet done are queued again.
        """
    )

    @OptionGroup var location: StoreLocation
    @Option(help: "The new store's directory (must not hold a store yet).") var to: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let source = try location.openForensic()
        if FileManager.default.fileExists(atPath: (to as NSString).appendingPathComponent("data.mdb")) {
            throw CommandFailure("\(to) already holds a store; give --to a new directory")
        }
        guard (to as NSString).standardizingPath != (location.path as NSString).standardizingPath else {
            throw CommandFailure("--to must name another directory than --store")
        }
        let destination = try LMDBStore.open(path: to, options: StoreOptions(create: true, codec: source.codec))
        let report = try source.salvage(into: destination)
        if json {
            try printJSON(report)
        } else {
            print("salvaged \(source.location) into \(destination.location): \(report.records) records, \(report.images) image entries, "
                + "\(report.memberships) memberships in \(report.collections) collections, \(report.models) models, \(report.jobs) jobs to do")
            if !report.damage.isEmpty {
                print("damage in the source (what lay behind a damaged page is lost without a name):")
                for f in report.damage.prefix(50) { print("  \(f.database) \(f.key): \(f.reason)") }
                if report.damage.count > 50 { print("  ... \(report.damage.count - 50) more (--json lists all)") }
            }
            if !report.lost.isEmpty {
                print("not saved (\(report.lost.count)):")
                for loss in report.lost.prefix(50) { print("  \(loss.kind) \(loss.key): \(loss.reason)") }
                if report.lost.count > 50 { print("  ... \(report.lost.count - 50) more (--json lists all)") }
            }
            print(report.destinationVerifies ? "the new store verifies" : "the new store does NOT verify: run voco inspect verify --store \(to)")
        }
        if !report.destinationVerifies { throw ExitCode(1) }
    }
}

/// `voco inspect dump`: every entry of every database as LMDB itself reads them (hidden: for
/// the fault harness, which compares what LMDB sees of a damaged store with the original).
struct InspectDumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print every entry as LMDB reads it: database, key (hex), SHA-256 of the value.",
        shouldDisplay: false
    )

    @OptionGroup var location: StoreLocation
    @Flag(help: "Read with VoCo Store's page reader instead of LMDB.") var pageReader = false

    func run() throws {
        let store = try LMDBStore(path: location.path, options: StoreOptions(readOnly: true), lmdb: LMDBOptions(reads: pageReader ? .checked : .lmdb))
        var lines: [String] = []
        try store.dumpEntries { database, key, value in
            lines.append("\(database) \(Digest.hexString(key)) \(Digest.sha256(value).hex)")
        }
        print(lines.joined(separator: "\n"))
    }
}
