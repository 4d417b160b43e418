import Foundation
import VoCoPipeline
import VoCoStore
import VoCoStoreLMDB
import VoCoTestSupport

// MARK: - Stores made and compared by the ingest tests

/// Everything an ingest writes, in a form two stores can be compared by: record bytes, each
/// collection's members in order, and `images` entries without their first-seen time (the one
/// value that depends on when a run happened).
struct StoreSnapshot: Equatable {
    var records: [RecordKey: [UInt8]] = [:]
    var collections: [String: [Digest]] = [:]
    var images: [Digest: ImageInfo] = [:]
    var models: [Digest] = []

    init(_ store: CacheStore) throws {
        try store.read { r in
            var keys: [RecordKey] = []
            try r.scanRecords { keys.append($0.key); return true }
            for key in keys { records[key] = try r.readTransaction.recordBytes(key) }
            for collection in try r.collections() {
                let members = try r.members(of: collection.name)
                collections[collection.name] = members.map(\.image)
                for member in members {
                    var info = try r.image(member.image)
                    info?.firstSeen = ""
                    images[member.image] = info
                }
            }
            models = try r.models().map(\.fingerprint).sorted()
        }
    }
}

/// A new LMDB store in a scratch folder.
func scratchStore(_ label: String = "ingest") throws -> CacheStore {
    try LMDBStore.open(path: (TestPaths.scratch(label) as NSString).appendingPathComponent("store"), options: StoreOptions(create: true))
}

/// An ingestor over `store` with the bundled model (loaded once for the whole target).
func bundledIngestor(_ store: CacheStore, batch: Int = 4, limits: IngestOptions? = nil) throws -> Ingestor {
    try Ingestor(store: store, model: try bundledModel.get(), options: limits ?? IngestOptions(batchSize: batch, prepareThreads: 2))
}

/// Copies sample images into a new folder (names kept), returns the folder.
func sampleFolder(_ names: [String], label: String = "images") throws -> String {
    let folder = TestPaths.scratch(label)
    for name in names {
        try FileManager.default.copyItem(atPath: (TestPaths.samples as NSString).appendingPathComponent(name),
                                         toPath: (folder as NSString).appendingPathComponent(name))
    }
    return folder
}

/// The sample images (JPEG and PNG) in name order.
func sampleImageNames(_ count: Int) throws -> [String] {
    Array(try FileManager.default.contentsOfDirectory(atPath: TestPaths.samples)
        .filter { $0.hasSuffix(".png") || $0.hasSuffix(".jpg") }.sorted().prefix(count))
}

func sha256(file path: String) throws -> Digest {
    Digest.sha256(try Data(contentsOf: URL(fileURLWithPath: path)))
}
