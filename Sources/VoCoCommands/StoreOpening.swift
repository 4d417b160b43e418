import Foundation
import VoCoStore
import VoCoStoreLMDB

// MARK: - A `--store` location -> a backend (the only place that knows the backends)

enum StoreOpening {
    /// The store used without `--store`: `$VOCO_STORE`, else the per-user LMDB store.
    static var defaultLocation: String { LMDBStore.defaultPath }

    /// Opens the store at `location`. Today every location is an LMDB directory; another
    /// backend (a URL scheme) is chosen here and nowhere else.
    static func open(_ location: String, options: StoreOptions) throws -> CacheStore {
        try LMDBStore.open(path: location, options: options)
    }
}
