import CZstd
import Foundation

// MARK: - One zstd frame in, one out

/// zstd with reused contexts (creating one per record costs more than compressing a small record).
enum Zstd {
    static var levels: ClosedRange<Int> { Int(ZSTD_minCLevel())...Int(ZSTD_maxCLevel()) }

    /// One zstd frame holding `source`, with its content size in the frame header.
    static func compress(_ source: UnsafeRawBufferPointer, level: Int) throws -> [UInt8] {
        let bound = ZSTD_compressBound(source.count)
        let context = compressors.take { ZSTD_createCCtx() }
        defer { compressors.give(context) }
        var result = 0
        let out = [UInt8](unsafeUninitializedCapacity: bound) { buffer, initialized in
            result = ZSTD_compressCCtx(context, buffer.baseAddress, bound, source.baseAddress, source.count, Int32(level))
            initialized = ZSTD_isError(result) != 0 ? 0 : result
        }
        if ZSTD_isError(result) != 0 {
            throw StoreError.zstd(operation: "compression", reason: String(cString: ZSTD_getErrorName(result)))
        }
        return out
    }

    /// Decompresses one frame into `destination`, which must be exactly the frame's content size.
    static func decompress(_ frame: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws {
        let declared = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        guard declared == UInt64(destination.count) else {
            throw RecordProblem("the zstd frame declares \(declared == ZSTD_CONTENTSIZE_UNKNOWN ? "no" : String(declared)) content bytes, the header \(destination.count)")
        }
        let context = decompressors.take { ZSTD_createDCtx() }
        defer { decompressors.give(context) }
        let written = ZSTD_decompressDCtx(context, destination.baseAddress, destination.count, frame.baseAddress, frame.count)
        if ZSTD_isError(written) != 0 {
            throw RecordProblem("zstd: \(String(cString: ZSTD_getErrorName(written)))")
        }
        guard written == destination.count else {
            throw RecordProblem("zstd produced \(written) bytes, the header says \(destination.count)")
        }
    }

    private static let compressors = ContextPool<OpaquePointer>()
    private static let decompressors = ContextPool<OpaquePointer>()
}

/// A few reusable contexts shared by threads; never more than were in use at once.
private final class ContextPool<Context>: @unchecked Sendable {
    private var free: [Context] = []
    private let lock = NSLock()

    func take(orMake make: () -> Context?) -> Context {
        lock.lock()
        let context = free.popLast()
        lock.unlock()
        if let context { return context }
        // Allocation failure of a few hundred KB means the process is out of memory anyway.
        guard let made = make() else { fatalError("zstd could not allocate a context: out of memory") }
        return made
    }

    func give(_ context: Context) {
        lock.lock()
        free.append(context)
        lock.unlock()
    }
}
