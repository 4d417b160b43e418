import Dispatch
import Foundation

// MARK: - Blocking work off the event loops and the task pool

/// Runs `body` (file writes with fsync, store transactions) on a Dispatch queue and waits for
/// it without blocking the caller's thread: the NIO event loops and Swift's cooperative pool
/// never sit in a system call that can take milliseconds. Compute-heavy work (the compression
/// pass) has threads of its own (IngestWorker), not this.
public func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        offloadQueue.async {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
    }
}

private let offloadQueue = DispatchQueue(label: "voco.server.blocking", qos: .userInitiated, attributes: .concurrent)
