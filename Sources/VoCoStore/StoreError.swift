import Foundation

/// What went wrong with which store, key, record or file, and where useful what to do.
public enum StoreError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The backend failed (`operation` names what it was doing, `reason` what it said).
    case backend(path: String, operation: String, reason: String)
    /// The file system (or server) holding the store has no room left; nothing of the failed
    /// write was kept.
    case diskFull(path: String, operation: String)
    /// A file-size limit (`ulimit -f`) stops the store's file from growing; nothing of the
    /// failed write was kept.
    case fileSizeLimit(path: String, operation: String, limit: Int)
    /// The store fails verification, so an operation that relies on its structure refuses to run.
    case damaged(path: String, failures: Int, first: String)
    /// A page of the store's file is damaged (the backend has no page checksums, so this is
    /// found by checking each page's structure as it is read); the read was refused.
    case damagedPage(path: String, database: String, page: UInt64?, reason: String)
    /// Another process uses the store in a way that makes opening it here unsafe.
    case storeInUse(path: String, reason: String)
    /// There is no store at `path` and it was opened without `create`.
    case noStore(path: String)
    /// Something that is not a VoCo store (e.g. an LMDB environment without its metadata).
    case notAStore(path: String, reason: String)
    /// The store was written with another schema version.
    case schemaMismatch(path: String, found: String, expected: Int)
    /// The store was opened read-only and a write was asked for.
    case readOnly(path: String)
    /// The map reached its size limit even after growing.
    case mapFull(path: String, mapSize: Int, limit: Int)
    /// The store was created with another codec than the one asked for.
    case codecMismatch(path: String, stored: String, requested: String)
    /// Bad codec settings (unknown name, level, group size).
    case invalidCodec(String)
    /// A record was asked for (or put) under a model the store does not know.
    case modelNotRegistered(path: String, model: Digest)
    /// Buffers that cannot become a record (wrong shape, values a codec cannot hold).
    case invalidTensors(image: Digest, reason: String)
    /// A stored record failed its checksum or header checks; it is refused, never served.
    case corruptRecord(path: String, key: String, image: Digest?, reason: String)
    /// A record or entry whose value cannot be parsed (image, model, job, collection).
    case corruptEntry(path: String, database: String, key: String, reason: String)
    /// A bad collection name or other argument.
    case invalidArgument(String)
    /// A file of a model directory could not be read or hashed.
    case modelFiles(path: String, reason: String)
    /// Compression or decompression failed.
    case zstd(operation: String, reason: String)

    public var description: String {
        switch self {
        case let .backend(path, operation, reason):
            return "\(path): \(operation) failed: \(reason)"
        case let .diskFull(path, operation):
            return "\(path): no space left on the device while \(operation); nothing of this write was kept (free space, then try again)"
        case let .fileSizeLimit(path, operation, limit):
            return "\(path): the file-size limit of this process (ulimit -f: \(limit) bytes) stops the store from growing while \(operation); nothing of this write was kept (raise the limit, then try again)"
        case let .damagedPage(path, database, page, reason):
            let place = [page.map { "page \($0)" }, database.isEmpty ? nil : "the \(database) database"].compactMap { $0 }.joined(separator: " of ")
            return "\(path): the store's file is damaged: \(place.isEmpty ? "" : place + ": ")\(reason); run voco inspect verify, and voco inspect salvage to copy what is intact into a new store"
        case let .storeInUse(path, reason):
            return "\(path): \(reason)"
        case let .damaged(path, failures, first):
            return "\(path): the store fails verification (\(failures) problem(s), first: \(first)); run voco inspect verify, and salvage what verifies into a new store"
        case let .noStore(path):
            return "\(path): no VoCo store here; pass --store with the path of an existing store (ingest creates one)"
        case let .notAStore(path, reason):
            return "\(path): not a VoCo store (\(reason)); pass --store with the path of a VoCo store"
        case let .schemaMismatch(path, found, expected):
            return "\(path): store schema version \(found), but this build of voco reads version \(expected); use a voco build for version \(found), or ingest into a new store"
        case let .readOnly(path):
            return "\(path): the store is open read-only; open it for writing to change it"
        case let .mapFull(path, mapSize, limit):
            return "\(path): the store's map is full at \(mapSize) bytes and may not grow past its limit of \(limit) bytes; raise the limit or free space (voco inspect rm, then gc)"
        case let .codecMismatch(path, stored, requested):
            return "\(path): the store was created with codec \(stored), not \(requested); use a new store for another codec"
        case let .invalidCodec(reason):
            return "invalid codec settings: \(reason)"
        case let .modelNotRegistered(path, model):
            return "\(path): model \(model.hex) is not registered in this store; register its descriptor before putting records"
        case let .invalidTensors(image, reason):
            return "image \(image.hex): cannot store this cache: \(reason)"
        case let .corruptRecord(path, key, image, reason):
            let imageText = image.map { " (image \($0.hex))" } ?? ""
            let remove = image.map { "voco inspect rm-record \($0.hex)" + (key.count >= 64 ? " --model \(key.prefix(64))" : "") } ?? "voco inspect rm-record --key \(key)"
            return "\(path): record \(key)\(imageText) refused: \(reason); delete it (\(remove)) and ingest the image again"
        case let .corruptEntry(path, database, key, reason):
            return "\(path): \(database) entry \(key) is unreadable: \(reason)"
        case let .invalidArgument(reason):
            return reason
        case let .modelFiles(path, reason):
            return "\(path): \(reason)"
        case let .zstd(operation, reason):
            return "zstd \(operation) failed: \(reason)"
        }
    }

    public var errorDescription: String? { description }
}
