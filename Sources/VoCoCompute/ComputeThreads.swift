import COpenBLAS
import Foundation
import VoCoKernels

// MARK: - One level of parallelism at a time

/// How the engine uses the cores: a pool of workers (`WorkerPool`) for parallel regions of
/// independent items (weight tiles, images x heads), and, for the OpenBLAS backend, OpenBLAS's
/// own threads for its big GEMMs, held to one thread inside a region so the two never
/// oversubscribe the machine.
public struct ComputeThreads: Sendable {
    /// Workers in a parallel region, and OpenBLAS threads outside one.
    public let count: Int
    /// `nil` with one thread.
    public let pool: WorkerPool?

    /// `$VOCO_THREADS` when set (e.g. 1 on a machine busy with other work), else every core.
    public static var defaultCount: Int {
        if let value = ProcessInfo.processInfo.environment["VOCO_THREADS"], let n = Int(value), n > 0 { return min(n, maximumCount) }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// More workers than this only cost memory and hand-offs: four per core, at most 1024.
    public static var maximumCount: Int { min(1024, 4 * max(1, ProcessInfo.processInfo.activeProcessorCount)) }

    /// `count` is held to 1 ... `maximumCount`.
    public init(count: Int = ComputeThreads.defaultCount) {
        let count = min(max(1, count), Self.maximumCount)
        pool = count > 1 ? WorkerPool(threads: count) : nil
        self.count = pool?.size ?? 1
        openblas_set_num_threads(Int32(self.count))
    }

    /// Below this many multiply-adds in all, a region runs on the calling thread: waking the
    /// workers costs more than it saves (a decode step of a small model is all such regions).
    public static let minimumParallelCost = 1 << 22

    /// Calls `body(item, worker)` for every item in `0 ..< items`; `worker` (in `0 ..< count`)
    /// indexes per-worker scratch, and no two concurrent calls of `body` share one. `cost`
    /// (multiply-adds in all) below `minimumParallelCost` keeps the work on the calling thread.
    public func forEach(_ items: Int, cost: Int = .max, _ body: (_ item: Int, _ worker: Int) -> Void) {
        guard items > 0 else { return }
        guard let pool, cost >= Self.minimumParallelCost, items > 1 else {
            for item in 0..<items { body(item, 0) }
            return
        }
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(Int32(count)) }
        pool.run(items, body)
    }
}

// MARK: - The worker pool

/// Workers that take the items of a parallel region one at a time (the calling thread is worker
/// 0 and takes items too), spin for a short while after a region (`$VOCO_SPIN_US`, default 200
/// µs) and then park. A region never waits for a worker the OS has not scheduled: the threads
/// that run claim the items, so on a machine busy with other work a region costs what its work
/// costs, not a time slice per hand-off (Dispatch's `concurrentPerform` and OpenBLAS's threads
/// hand work to particular threads and wait for them). `voco-bench threads` measures both.
public final class WorkerPool: @unchecked Sendable {
    public let pointer: OpaquePointer
    /// Workers, the calling thread included.
    public let size: Int

    /// `nil` when no thread could be started.
    public init?(threads: Int, spinMicroseconds: Int = -1) {
        guard let pool = vk_pool_create(Int32(clamping: threads), Int32(clamping: spinMicroseconds)) else { return nil }
        pointer = pool
        size = Int(vk_pool_size(pool))
    }

    deinit { vk_pool_destroy(pointer) }

    /// Runs `body(item, worker)` for every item in `0 ..< items` on the pool's workers. A call
    /// from inside a region, or while another thread runs one on this pool, runs on the caller.
    public func run(_ items: Int, _ body: (_ item: Int, _ worker: Int) -> Void) {
        typealias Body = (Int, Int) -> Void
        withoutActuallyEscaping(body) { body in
            var closure: Body = body
            withUnsafeMutablePointer(to: &closure) { context in
                vk_pool_run(pointer, items, { context, item, worker in
                    context!.assumingMemoryBound(to: Body.self).pointee(Int(item), Int(worker))
                }, context)
            }
        }
    }
}
