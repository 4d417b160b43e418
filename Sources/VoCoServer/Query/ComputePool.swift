import Foundation

// MARK: - Bounded in-flight work on threads of the server's own

/// `threads` threads that run the model, and room for `waiting` more jobs in line. A job past
/// that is refused at once (the route answers 503 + Retry-After). The model never runs on a NIO
/// event loop or in Swift's cooperative pool: a question holds one of these threads for its
/// whole computation, and the request's task only waits for it.
final class ComputePool: @unchecked Sendable {
    let threads: Int
    let waiting: Int
    private let condition = NSCondition()
    private var queue: [() -> Void] = []
    private var head = 0
    private var computing = 0
    private var stopping = false
    private var running = 0

    init(threads: Int, waiting: Int, name: String = "voco.query") {
        self.threads = threads
        self.waiting = waiting
        for i in 0..<threads {
            let thread = Thread { [self] in loop() }
            thread.name = "\(name).\(i)"
            thread.stackSize = 16 << 20
            condition.withLock { running += 1 }
            thread.start()
        }
    }

    /// Queues `job`; false (and nothing queued) when `threads` jobs compute and `waiting` wait.
    func submit(_ job: @escaping () -> Void) -> Bool {
        condition.withLock {
            guard !stopping, queue.count - head + computing < threads + waiting else { return false }
            queue.append(job)
            condition.signal()
            return true
        }
    }

    /// Jobs computing and jobs waiting now.
    var counts: (computing: Int, waiting: Int) { condition.withLock { (computing, queue.count - head) } }

    /// Lets the threads finish the jobs already queued, then leave; refuses new ones. Returns
    /// whether they left within `timeout`.
    @discardableResult
    func stop(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        stopping = true
        condition.broadcast()
        while running > 0 {
            if !condition.wait(until: deadline) { return false }
        }
        return true
    }

    private func loop() {
        while true {
            condition.lock()
            while head == queue.count && !stopping { condition.wait() }
            if head == queue.count {  // stopping, nothing left
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let job = queue[head]
            head += 1
            if head > 64 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            computing += 1
            condition.unlock()
            job()
            condition.withLock { computing -= 1 }
        }
    }
}
