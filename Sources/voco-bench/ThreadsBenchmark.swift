import ArgumentParser
import Foundation
import VoCoCompute

/// Hand-offs of parallel regions: the time one region of short items takes with the engine's
/// worker pool (spinning briefly, then parking) against `DispatchQueue.concurrentPerform`, on an
/// idle machine and with `--busy` threads competing for the cores. A decode step is hundreds of
/// such regions of tens of microseconds each.
struct ThreadsBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "threads", abstract: "Region hand-off time: worker pool against Dispatch.")

    @Option(help: "Workers (default: every core).") var threads: Int?
    @Option(help: "Regions per measurement.") var regions = 2000
    @Option(help: "Work per region in microseconds of one core, split into 4 items per worker.") var work = 40.0
    @Option(help: "Background threads spinning during the measurement (a busy machine).") var busy = 0

    func run() {
        let count = threads ?? ComputeThreads.defaultCount
        let items = 4 * count
        let perItem = calibrate(microseconds: work / Double(items))
        let ideal = work / Double(count)
        let stop = StopFlag()
        let spinners = (0..<busy).map { _ in Thread { while !stop.value { spin(10_000) } } }
        spinners.forEach { $0.start() }
        print("\(count) workers, \(regions) regions of \(items) items, \(formatted(work, 1)) µs of work each (ideal \(formatted(ideal, 1)) µs per region), \(busy) busy thread(s)")
        let spinning = ComputeThreads(count: count)
        let parking = WorkerPool(threads: count, spinMicroseconds: 0)
        let cases: [(String, ((Int, Int) -> Void) -> Void)] = [
            ("worker pool, spin 200 µs then park", { body in spinning.pool?.run(items, body) }),
            ("worker pool, park at once", { body in parking?.run(items, body) }),
            ("DispatchQueue.concurrentPerform", { body in DispatchQueue.concurrentPerform(iterations: count) { w in
                var i = w
                while i < items { body(i, w); i += count }
            } }),
        ]
        for (name, region) in cases {
            var times: [Double] = []
            for _ in 0..<regions {
                let start = DispatchTime.now().uptimeNanoseconds
                region { _, _ in spin(perItem) }
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
                usleep(20)  // the serial work between two regions of a decode step
            }
            times.sort()
            let mean = times.reduce(0, +) / Double(times.count)
            print("\(name): mean \(formatted(mean, 1)) µs, median \(formatted(times[times.count / 2], 1)), p99 \(formatted(times[times.count * 99 / 100], 1)) per region")
        }
        stop.value = true
    }

    /// Read by the busy threads, set once at the end (a benchmark's flag; a late read is harmless).
    final class StopFlag: @unchecked Sendable { var value = false }

    /// Iterations of `spin` that take about `microseconds` on one core.
    func calibrate(microseconds: Double) -> Int {
        let probe = 1_000_000
        let seconds = bestSeconds(repeats: 5) { spin(probe) }
        return max(1, Int(Double(probe) * microseconds / (seconds * 1e6)))
    }
}

@inline(never)
func spin(_ iterations: Int) {
    var x = 1.0
    for _ in 0..<iterations { x = x * 1.000_000_1 + 1e-9 }
    if x < 0 { print(x) }
}
