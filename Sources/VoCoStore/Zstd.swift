import CZstd
import Foundation

// MARK: - One zstd frame in, one out

/// zstd with reused contexts (creating one per record costs more than compressing a small record).
enum Zstd {
    static var levels: ClosedRange<Int> { Int(ZSTD_minCLevel())...Int(ZSTD_maxCLevel()) }

    /// One zstd frame holding `source`, with its content size in the frame header. A block ends
    /// at every offset in `partEnds`, so each part (a byte plane, the scales) gets its own
    /// entropy tables; a plain frame for any decoder.
    static func compress(_ source: UnsafeRawBufferPointer, partEnds: [Int], level: Int) throws -> [UInt8] {
        let context = compressors.take { ZSTD_createCCtx() }
        defer { compressors.give(context) }
        func check(_ code: Int) throws {
            if ZSTD_isError(code) != 0 { throw StoreError.zstd(operation: "compression", reason: String(cString: ZSTD_getErrorName(code))) }
        }
        try check(ZSTD_CCtx_reset(context, ZSTD_reset_session_and_parameters))
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level)))
        try check(ZSTD_CCtx_setPledgedSrcSize(context, UInt64(source.count)))
        // Each extra block costs at most a 3-byte block header beyond the usual bound.
        let capacity = ZSTD_compressBound(source.count) + 8 * (partEnds.count + 1)
        var failure: String?
        let out = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            var output = ZSTD_outBuffer(dst: buffer.baseAddress, size: capacity, pos: 0)
            var start = 0
            for end in partEnds.filter({ $0 > 0 && $0 < source.count }) + [source.count] where failure == nil {
                var input = ZSTD_inBuffer(src: source.baseAddress.map { $0 + start }, size: end - start, pos: 0)
                // With room for the whole bound, one call consumes the part and flushes it (returns 0).
                let remaining = ZSTD_compressStream2(context, &output, &input, end == source.count ? ZSTD_e_end : ZSTD_e_flush)
                if ZSTD_isError(remaining) != 0 { failure = String(cString: ZSTD_getErrorName(remaining)) }
                else if remaining != 0 || input.pos != input.size { failure = "output bound too small" }
                start = end
            }
            initialized = output.pos
        }
        if let failure { throw StoreError.zstd(operation: "compression", reason: failure) }
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
