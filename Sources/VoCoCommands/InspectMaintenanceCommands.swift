import ArgumentParser
import Foundation
import VoCoStore

/// `voco inspect rm NAME`: removes a collection's membership; records stay until `gc`.
struct InspectRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove a collection (its images' records stay until `voco inspect gc`)."
    )

    @OptionGroup var location: StoreLocation
    @Argument(help: "The collection to remove.") var collection: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try location.open(writable: true)
        let removed = try store.write { try $0.removeCollection(collection) }
        guard removed > 0 else {
            throw CommandFailure("\(store.location): no collection '\(collection)'; `voco inspect ls` lists them")
        }
        if json { return try printJSON(["collection": collection, "imagesRemoved": "\(removed)"]) }
        print("removed collection '\(collection)' (\(removed) images); `voco inspect gc` drops records no collection refers to")
    }
}

/// `voco inspect gc`: drops records and image entries that no collection refers to.
struct InspectGCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Drop records and image entries that no collection refers to."
    )

    @OptionGroup var location: StoreLocation
    @Flag(help: "Only count what would be dropped.") var dryRun = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try location.open(writable: !dryRun)
        let report = try store.gc(dryRun: dryRun)
        if json { return try printJSON(report) }
        let verb = dryRun ? "would drop" : "dropped"
        print("\(store.location): \(verb) \(report.recordsRemoved) records and \(report.imagesRemoved) image entries (\(byteCount(report.bytesFreed)))")
    }
}
