import Foundation
import VoCoStore

// MARK: - One lock file per store: the rule and how it is enforced
//
// LMDB keeps its writer mutex and its reader table in `lock.mdb`. Every process that has the
// store open must use the same lock file: delete `lock.mdb` under a running process and the
// next one makes a new one, and two writers (or a writer and a reader whose pages it reuses)
// no longer see each other. LMDB cannot notice; VoCo Store does, for every process that opens
// a store through it:
// - each environment holds a shared open-file-description lock on one byte of `data.mdb`, at
//   `generationBase + inode of lock.mdb` (a byte far past the file's end, so nothing is locked
//   that LMDB reads or writes);
// - opening refuses when another process holds such a byte for another inode (it uses a lock
//   file that is no longer `lock.mdb`);
// - every transaction first checks that `lock.mdb` is still the file it opened.
// LMDB itself locks byte 0 of `lock.mdb` with classic fcntl locks, which a process loses when it
// closes any descriptor of that file: so VoCo Store never opens `lock.mdb` in a process that
// has it open through LMDB (`OpenStores`).

/// Open-file-description locks (Linux 3.15+): owned by one descriptor, not by the process.
private let F_OFD_GETLK: Int32 = 36, F_OFD_SETLK: Int32 = 37
private let generationBase: Int = 1 << 50
private let generationSpan: Int = 1 << 40

struct FileID: Hashable {
    let device: UInt64
    let inode: UInt64

    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}

/// The stores (by `data.mdb`) this process has open through LMDB, and their environments.
/// LMDB forbids opening one store twice in a process (closing the second drops the first's
/// locks), so a page reader pins its snapshots with an environment this process already has.
enum OpenStores {
    private final class Entry {
        weak var environment: LMDBEnvironment?
        let identity: ObjectIdentifier
        init(_ environment: LMDBEnvironment) {
            self.environment = environment
            identity = ObjectIdentifier(environment)
        }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var entries: [FileID: [Entry]] = [:]

    static func isOpen(_ id: FileID) -> Bool { lock.withLock { !(entries[id] ?? []).isEmpty } }
    static func environment(for id: FileID) -> LMDBEnvironment? { lock.withLock { entries[id]?.lazy.compactMap(\.environment).first } }
    static func add(_ id: FileID, _ environment: LMDBEnvironment) { lock.withLock { entries[id, default: []].append(Entry(environment)) } }
    static func remove(_ id: FileID, _ environment: LMDBEnvironment) {
        let identity = ObjectIdentifier(environment)
        lock.withLock { entries[id]?.removeAll { $0.identity == identity } }
    }
}

/// The lock-file rule for one open environment.
final class LockFileRule: @unchecked Sendable {
    let storePath: String
    private let lockPath: String
    private let lockFile: FileID
    private let dataDescriptor: Int32

    /// Takes this environment's generation byte and refuses when another generation is in use.
    init(storePath: String) throws {
        self.storePath = storePath
        lockPath = (storePath as NSString).appendingPathComponent("lock.mdb")
        guard let lockFile = FileID(path: lockPath) else {
            throw StoreError.storeInUse(path: storePath, reason: "lock.mdb disappeared while the store was being opened; another process may be deleting it: stop every process that uses the store, then try again")
        }
        self.lockFile = lockFile
        dataDescriptor = open((storePath as NSString).appendingPathComponent("data.mdb"), O_RDONLY | O_CLOEXEC)
        guard dataDescriptor >= 0 else {
            throw StoreError.backend(path: storePath, operation: "opening data.mdb", reason: String(cString: strerror(errno)))
        }
        let mine = generationBase + Int(lockFile.inode % UInt64(generationSpan))
        // A file system without these locks (some network file systems): the rule cannot be checked there.
        guard Self.lock(dataDescriptor, F_OFD_SETLK, type: F_RDLCK, start: mine, length: 1) else { return }
        let others = [(generationBase, mine - generationBase), (mine + 1, generationBase + generationSpan - mine - 1)]
        if others.contains(where: { $0.1 > 0 && Self.isLocked(dataDescriptor, start: $0.0, length: $0.1) }) {
            close(dataDescriptor)
            throw StoreError.storeInUse(path: storePath, reason: "another process uses this store through a lock file that is no longer its lock.mdb (lock.mdb was deleted or replaced while that process had the store open); two lock files let two writers overwrite each other's pages, so it is not opened: stop every process that uses the store, then open it again and run voco inspect verify")
        }
    }

    deinit { close(dataDescriptor) }

    /// Refuses when `lock.mdb` is no longer the file this environment opened.
    func check() throws {
        guard FileID(path: lockPath) == lockFile else {
            throw StoreError.storeInUse(path: storePath, reason: "lock.mdb was deleted or replaced while this process had the store open; another process may now use another lock file, and a transaction here could overwrite its pages or read pages it reuses: stop every process that uses the store (this one too), then start again and run voco inspect verify")
        }
    }

    /// Whether any process holds a generation byte of the store in `storePath` (it has the store
    /// open through VoCo Store with a lock file).
    static func anyGeneration(storePath: String) -> Bool {
        let fd = open((storePath as NSString).appendingPathComponent("data.mdb"), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return isLocked(fd, start: generationBase, length: generationSpan)
    }

    private static func lock(_ fd: Int32, _ command: Int32, type: Int32, start: Int, length: Int) -> Bool {
        var info = flock()
        info.l_type = Int16(type)
        info.l_whence = Int16(SEEK_SET)
        info.l_start = off_t(start)
        info.l_len = off_t(length)
        return fcntl(fd, command, &info) == 0
    }

    private static func isLocked(_ fd: Int32, start: Int, length: Int) -> Bool {
        var info = flock()
        info.l_type = Int16(F_WRLCK)
        info.l_whence = Int16(SEEK_SET)
        info.l_start = off_t(start)
        info.l_len = off_t(length)
        guard fcntl(fd, F_OFD_GETLK, &info) == 0 else { return false }
        return info.l_type != Int16(F_UNLCK)
    }
}
