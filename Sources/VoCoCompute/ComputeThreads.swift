import COpenBLAS
import Foundation

// MARK: - One level of parallelism at a time

/// How the engine uses the cores: OpenBLAS's own threads for big GEMMs, or
/// `DispatchQueue.concurrentPerform` over independent items (images, heads, weight tiles) with
/// OpenBLAS held to one thread inside, so the two never oversubscribe the machine.
public struct ComputeThreads: Sendable {
    /// Workers in a parallel region, and OpenBLAS threads outside one.
    public let count: Int

    /// `$VOCO_THREADS` when set (e.g. 1 on a machine busy with other work), else every core.
    public static var defaultCount: Int {
        if let value = ProcessInfo.processInfo.environment["VOCO_THREADS"], let n = Int(value), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    public init(count: Int = ComputeThreads.defaultCount) {
        self.count = max(1, count)
        openblas_set_num_threads(Int32(self.count))
    }

    /// Below this many multiply-adds in all, a region runs on the calling thread: waking the
    /// workers costs more than it saves (a decode step of a small model is all such regions).
    public static let minimumParallelCost = 1 << 22

    /// Calls `body(item, worker)` for every item in `0 ..< items`; items are striped over the
    /// workers, and `worker` (in `0 ..< count`) indexes per-worker scratch. `cost` (multiply-adds
    /// in all) below `minimumParallelCost` keeps the work on the calling thread.
    public func forEach(_ items: Int, cost: Int = .max, _ body: (_ item: Int, _ worker: Int) -> Void) {
        let workers = cost < Self.minimumParallelCost ? 1 : min(count, items)
        if workers <= 1 {
            for item in 0..<items { body(item, 0) }
            return
        }
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(Int32(count)) }
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var item = worker
            while item < items {
                body(item, worker)
                item += workers
            }
        }
    }
}
