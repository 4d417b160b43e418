import Foundation
import Testing
import VoCoCompute

@Suite struct ComputeThreadsTests {
    /// A huge or absurd thread count (from --threads or $VOCO_THREADS) is held to what the
    /// machine can use instead of trapping or starting a thread per unit.
    @Test(arguments: [Int.min, -1, 0, 1, 100_000, Int(Int32.max) + 1, Int.max])
    func anyCountIsHeldToWhatTheMachineCanUse(_ requested: Int) {
        let threads = ComputeThreads(count: requested)
        #expect((1...ComputeThreads.maximumCount).contains(threads.count))
        let seen = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 64)  // one slot per item: no two threads share one
        defer { seen.deallocate() }
        seen.initialize(repeating: false)
        threads.forEach(64) { item, _ in seen[item] = true }
        #expect(seen.allSatisfy { $0 })
    }
}
