import Foundation

// MARK: - Work done ahead on other threads, handed over in order

/// Runs `work(i)` for i in 0..<count on `threads` threads of its own, at most `window` items
/// ahead of the consumer, and hands the results over in index order (`next`). At most `window`
/// results exist at once (memory stays flat however large `count` is). The consumer is one
/// thread, and calls `cancel` when it is done (the threads hold the queue until then).
final class OrderedPrefetch<Output>: @unchecked Sendable {
    private let count: Int
    private let window: Int
    private let work: (Int) -> Output
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var nextToStart = 0
    private var nextToHand = 0
    private var ready: [Int: Output] = [:]
    private var cancelled = false
    private var running = 0

    init(count: Int, threads: Int, window: Int, work: @escaping (Int) -> Output) {
        self.count = count
        self.window = max(1, window)
        self.work = work
        let threads = max(1, min(threads, count))
        guard count > 0 else { return }
        running = threads
        for t in 0..<threads {
            let thread = Thread { [self] in loop() }
            thread.name = "voco-prepare-\(t)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Seconds `next` spent waiting for a result not ready yet (the consumer outran the threads).
    private(set) var waitedSeconds = 0.0

    /// The next result in index order; nil after the last one (or after `cancel`).
    func next() -> Output? {
        condition.lock()
        defer { condition.unlock() }
        guard nextToHand < count else { return nil }
        if ready[nextToHand] == nil, !cancelled {
            let start = DispatchTime.now().uptimeNanoseconds
            while ready[nextToHand] == nil, !cancelled { condition.wait() }
            waitedSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        guard let output = ready.removeValue(forKey: nextToHand) else { return nil }
        nextToHand += 1
        condition.broadcast()
        return output
    }

    /// Stops starting new items and waits for the threads to finish the ones they hold.
    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        ready.removeAll()
        condition.unlock()
    }

    private func loop() {
        condition.lock()
        while true {
            while !cancelled, nextToStart < count, nextToStart >= nextToHand + window { condition.wait() }
            guard !cancelled, nextToStart < count else { break }
            let index = nextToStart
            nextToStart += 1
            condition.unlock()
            let output = work(index)
            condition.lock()
            if !cancelled { ready[index] = output }
            condition.broadcast()
        }
        running -= 1
        condition.broadcast()
        condition.unlock()
    }
}
