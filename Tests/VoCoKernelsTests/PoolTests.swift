import Foundation
import Testing
import VoCoKernels

/// The worker pool: every item once, worker ids in range and never shared by two items at the
/// same time, regions after the workers parked, concurrent callers (the second runs on itself).
@Suite struct PoolTests {
    final class Record: @unchecked Sendable {
        let lock = NSLock()
        var counts: [Int]
        var busy: [Bool]
        var overlaps = 0
        var badWorkers = 0
        init(items: Int, workers: Int) {
            counts = [Int](repeating: 0, count: items)
            busy = [Bool](repeating: false, count: workers)
        }
    }

    static func run(_ pool: OpaquePointer?, items: Int, record: Record) {
        let context = Unmanaged.passUnretained(record).toOpaque()
        vk_pool_run(pool, items, { context, item, worker in
            let record = Unmanaged<Record>.fromOpaque(context!).takeUnretainedValue()
            record.lock.lock()
            if worker < 0 || worker >= record.busy.count { record.badWorkers += 1 } else {
                if record.busy[Int(worker)] { record.overlaps += 1 }
                record.busy[Int(worker)] = true
            }
            record.counts[Int(item)] += 1
            record.lock.unlock()
            if item % 7 == 0 { usleep(50) }  // uneven items
            record.lock.lock()
            if worker >= 0 && worker < record.busy.count { record.busy[Int(worker)] = false }
            record.lock.unlock()
        }, context)
    }

    @Test(arguments: [1, 2, 3, 8])
    func everyItemRunsOnceOnAValidWorker(threads: Int32) {
        let pool = vk_pool_create(threads, 50)
        defer { vk_pool_destroy(pool) }
        #expect(vk_pool_size(pool) == threads)
        for items in [0, 1, 2, 5, 64, 1001] {
            for _ in 0..<20 {
                let record = Record(items: items, workers: Int(threads))
                Self.run(pool, items: items, record: record)
                #expect(record.counts.allSatisfy { $0 == 1 })
                #expect(record.overlaps == 0 && record.badWorkers == 0)
            }
        }
    }

    @Test func regionsAfterTheWorkersParkStillRun() {
        let pool = vk_pool_create(3, 0)  // park at once
        defer { vk_pool_destroy(pool) }
        for _ in 0..<50 {
            usleep(200)
            let record = Record(items: 40, workers: 3)
            Self.run(pool, items: 40, record: record)
            #expect(record.counts.allSatisfy { $0 == 1 })
        }
    }

    @Test func concurrentCallersOnOnePoolEachFinish() async {
        let pool = vk_pool_create(2, 100)
        defer { vk_pool_destroy(pool) }
        let records = (0..<4).map { _ in Record(items: 300, workers: 2) }
        await withTaskGroup(of: Void.self) { group in
            for record in records {
                group.addTask { for _ in 0..<10 { record.counts = [Int](repeating: 0, count: 300); Self.run(pool, items: 300, record: record) } }
            }
        }
        for record in records { #expect(record.counts.allSatisfy { $0 == 1 }) }
    }

    @Test func nullPoolRunsOnTheCaller() {
        let record = Record(items: 10, workers: 1)
        Self.run(nil, items: 10, record: record)
        #expect(record.counts.allSatisfy { $0 == 1 } && record.badWorkers == 0)
        #expect(vk_pool_size(nil) == 1)
    }
}
