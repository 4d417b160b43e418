import ArgumentParser
import Foundation
import VoCoStore
import VoCoStoreRedis

/// `voco inspect stats`: counts, sizes and compression per codec.
struct InspectStatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Records, images, collections, models, and raw vs stored bytes per codec."
    )

    @OptionGroup var location: StoreLocation
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let stats = try location.open().stats()
        if json { return try printJSON(stats) }
        print("store \(stats.path) (schema \(stats.schemaVersion), codec \(stats.codec))")
        print(table([
            ["records", "\(stats.records)"], ["images", "\(stats.images)"],
            ["collections", "\(stats.collections) (\(stats.collectionMembers) memberships)"],
            ["models", "\(stats.models)"], ["jobs", "\(stats.jobs)"],
            RedisStoreURL.isRedis(stats.path)
                ? ["memory", "\(byteCount(stats.usedBytes)) used by the cluster's masters (all stores) " + (stats.mapSize > 0 ? "of \(byteCount(stats.mapSize))" : "(no maxmemory)")]
                : ["map", "\(byteCount(stats.usedBytes)) used of \(byteCount(stats.mapSize))"],
        ]))
        guard !stats.perCodec.isEmpty else { return }
        print("")
        var rows = [["codec", "records", "raw", "stored", "ratio"]]
        for c in stats.perCodec {
            rows.append([c.codec, "\(c.records)", byteCount(c.rawBytes), byteCount(c.storedBytes), String(format: "%.2fx", c.ratio)])
        }
        rows.append(["all", "\(stats.records)", byteCount(stats.rawBytes), byteCount(stats.storedBytes), String(format: "%.2fx", stats.ratio)])
        print(table(rows))
    }
}

/// `voco inspect ls [NAME]`: collections, or one collection's images, paged.
struct InspectListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List collections, or the images of one collection in order (paged)."
    )

    @OptionGroup var location: StoreLocation
    @Argument(help: "A collection name; without it, every collection is listed.") var collection: String?
    @Option(help: "Skip this many images.") var offset = 0
    @Option(help: "List at most this many images.") var limit = 50
    @Flag(help: "Print JSON.") var json = false

    struct Member: Encodable {
        var ordinal: UInt64
        var image: Digest
        var info: ImageInfo?
        /// Fingerprints of the models that have a record for the image.
        var models: [Digest]
    }

    struct Page: Encodable {
        var collection: String
        var total: Int
        var offset: Int
        var members: [Member]
    }

    func validate() throws {
        try require("offset", offset, in: 0...Int.max)
        try require("limit", limit, in: 1...Int.max)
    }

    func run() throws {
        let store = try location.open()
        guard let collection else {
            let all = try store.read { try $0.collections() }
            if json { return try printJSON(all.map { ["name": $0.name, "images": "\($0.count)"] }) }
            if all.isEmpty { print("\(store.location): no collections") }
            print(table(all.map { [$0.name, "\($0.count) images"] }))
            return
        }
        let page = try store.read { txn -> Page? in
            guard let total = try txn.collection(named: collection)?.count else { return nil }
            let models = try txn.models().map(\.fingerprint)
            let members = try txn.members(of: collection, offset: offset, limit: limit).map { member in
                Member(ordinal: member.ordinal, image: member.image, info: try txn.image(member.image),
                       models: try models.filter { try txn.hasRecord(image: member.image, model: $0) })
            }
            return Page(collection: collection, total: total, offset: offset, members: members)
        }
        guard let page else {
            throw CommandFailure("\(store.location): no collection '\(collection)'; `voco inspect ls` lists them")
        }
        if json { return try printJSON(page) }
        // members.count <= total - offset, so offset + count cannot overflow; offset + 1 can.
        guard !page.members.isEmpty else {
            print("\(page.collection): no images from --offset \(offset) (the collection has \(page.total))")
            return
        }
        print("\(page.collection): images \(offset + 1)-\(offset + page.members.count) of \(page.total)")
        print(table(page.members.map { m in
            ["\(m.ordinal)", m.image.short, m.info.map { "\($0.format) \($0.width)x\($0.height)" } ?? "-",
             m.models.isEmpty ? "no record" : "\(m.models.count) record(s)", m.info?.sourceNames.first ?? ""]
        }))
        if offset + page.members.count < page.total {
            print("... more: --offset \(offset + page.members.count)")
        }
    }
}
