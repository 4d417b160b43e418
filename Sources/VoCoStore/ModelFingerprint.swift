import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - What a model's caches depend on, as one digest

/// The fingerprint of a model directory: SHA-256 of a manifest that lists, sorted by name,
/// `<sha256 hex>  <name>\n` for config.json, preprocessor_config.json (when present), every
/// `*.safetensors` file, and, when config.json's `mm_vision_tower` names a directory, that
/// directory's config.json and `*.safetensors` (names prefixed `vision_tower/`). The manifest
/// starts with the line `voco-model-fingerprint 1`. It reads files only, no model code.
/// Weight hashes are cached in the store's `models` database under the file's identity
/// (device, inode, size, mtime, ctime, path), so reopening a 13 GB model does not rehash it.
public struct ModelFingerprint: Sendable {
    public static let manifestHeader = "voco-model-fingerprint 1\n"

    public let fingerprint: Digest
    public let files: [ModelFile]
    public let manifest: String
    /// How many files were hashed now (the rest came from the cache).
    public let filesHashed: Int

    /// Hashes the model in `directory`; with a store, uses and (when writable) fills its hash cache.
    public static func compute(directory: String, store: CacheStore? = nil) throws -> ModelFingerprint {
        let root = URL(fileURLWithPath: directory).standardizedFileURL.resolvingSymlinksInPath().path
        var named: [(name: String, path: String)] = []
        let config = (root as NSString).appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: config) else {
            throw StoreError.modelFiles(path: root, reason: "no config.json: not a model directory")
        }
        named.append(("config.json", config))
        let preprocessor = (root as NSString).appendingPathComponent("preprocessor_config.json")
        if FileManager.default.fileExists(atPath: preprocessor) { named.append(("preprocessor_config.json", preprocessor)) }
        named += try weightFiles(in: root).map { ($0, (root as NSString).appendingPathComponent($0)) }
        if let tower = try visionTowerDirectory(config: config, root: root) {
            let towerConfig = (tower as NSString).appendingPathComponent("config.json")
            if FileManager.default.fileExists(atPath: towerConfig) { named.append(("vision_tower/config.json", towerConfig)) }
            named += try weightFiles(in: tower).map { ("vision_tower/" + $0, (tower as NSString).appendingPathComponent($0)) }
        }
        named.sort { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }

        var files: [ModelFile] = []
        var fresh: [FileHashEntry] = []  // weight hashes to cache
        var hashed = 0
        for (name, path) in named {
            var entry = try identity(of: path)
            if name.hasSuffix(".safetensors"), let store, let cached = try store.cachedFileHash(entry) {
                entry.sha256 = cached
            } else {
                entry.sha256 = try hashFile(path)
                hashed += 1
                if name.hasSuffix(".safetensors") { fresh.append(entry) }
            }
            files.append(ModelFile(name: name, sha256: entry.sha256, byteCount: entry.byteCount))
        }
        if let store, !fresh.isEmpty, !store.isReadOnly {
            try store.write { txn in for entry in fresh { try txn.transaction.cacheFileHash(entry) } }
        }
        let manifest = manifestHeader + files.map { "\($0.sha256.hex)  \($0.name)\n" }.joined()
        return ModelFingerprint(fingerprint: Digest.sha256(Array(manifest.utf8)), files: files, manifest: manifest, filesHashed: hashed)
    }

    // MARK: Files

    private static func weightFiles(in directory: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".safetensors") }.sorted()
        } catch {
            throw StoreError.modelFiles(path: directory, reason: "cannot list the directory: \(error.localizedDescription)")
        }
    }

    /// `mm_vision_tower` when it names an existing directory other than the model's own.
    private static func visionTowerDirectory(config: String, root: String) throws -> String? {
        guard let data = FileManager.default.contents(atPath: config) else {
            throw StoreError.modelFiles(path: config, reason: "cannot read")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw StoreError.modelFiles(path: config, reason: "not a JSON object")
        }
        guard let tower = object["mm_vision_tower"] as? String, !tower.isEmpty else { return nil }
        let candidate = tower.hasPrefix("/") ? tower : (root as NSString).appendingPathComponent(tower)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
        let resolved = URL(fileURLWithPath: candidate).standardizedFileURL.resolvingSymlinksInPath().path
        return resolved == root ? nil : resolved
    }

    private static func identity(of path: String) throws -> FileHashEntry {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw StoreError.modelFiles(path: path, reason: "cannot stat: \(String(cString: strerror(errno)))")
        }
        return FileHashEntry(
            path: path, device: UInt64(info.st_dev), inode: UInt64(info.st_ino), byteCount: Int(info.st_size),
            mtimeNs: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
            ctimeNs: Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec),
            sha256: Digest(unchecked: [UInt8](repeating: 0, count: 32)))
    }

    /// SHA-256 of a file, read in 8 MiB pieces.
    static func hashFile(_ path: String) throws -> Digest {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw StoreError.modelFiles(path: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var hasher = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 << 20, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.modelFiles(path: path, reason: "read failed: \(String(cString: strerror(errno)))")
            }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return Digest(unchecked: Array(hasher.finalize()))
    }
}

extension CacheStore {
    /// The cached SHA-256 of a file, when its identity (device, inode, size, times, path) is unchanged.
    func cachedFileHash(_ entry: FileHashEntry) throws -> Digest? {
        guard let cached = try read({ try $0.readTransaction.cachedFileHash(identity: entry.identity) }) else { return nil }
        var probe = cached
        probe.sha256 = entry.sha256
        return probe == entry ? cached.sha256 : nil
    }
}
