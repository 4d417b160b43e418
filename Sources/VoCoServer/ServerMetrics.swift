import Foundation
import Prometheus

// MARK: - One Prometheus registry per server

/// A server's metrics, served at `/metrics` in Prometheus' text format. Each server (and each
/// test) has its own registry: nothing is bootstrapped process-wide. Modules add their metrics
/// with `registry` and may refresh gauges just before each scrape (`beforeScrape`).
public final class ServerMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let lock = NSLock()
    private var refreshers: [@Sendable () -> Void] = []
    private var requestCounters: [String: Counter] = [:]
    private let requestSeconds: DurationHistogram

    public init() {
        requestSeconds = registry.makeDurationHistogram(
            descriptor: metric("voco_http_request_duration", unit: "seconds", help: "Time from a request's head to its response, all routes"),
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10)])
    }

    /// Runs `refresh` before every scrape (e.g. to read a queue depth from the store).
    public func beforeScrape(_ refresh: @escaping @Sendable () -> Void) {
        lock.withLock { refreshers.append(refresh) }
    }

    /// The text exposition format.
    public func scrape() -> [UInt8] {
        for refresh in lock.withLock({ refreshers }) { refresh() }
        return registry.emitToBuffer()
    }

    func countRequest(method: String, route: String, status: Int, duration: Duration) {
        let key = "\(method) \(route) \(status)"
        let counter = lock.withLock { () -> Counter in
            if let counter = requestCounters[key] { return counter }
            let counter = registry.makeCounter(
                descriptor: metric("voco_http_requests", unit: "total", help: "HTTP requests answered, by route pattern and status"),
                labels: [("method", method), ("route", route), ("status", String(status))])
            requestCounters[key] = counter
            return counter
        }
        counter.increment()
        requestSeconds.record(duration)
    }
}

/// A metric's name (`<name>_<unit>`) and help text.
public func metric(_ name: String, unit: String, help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: unit, helpText: help)
}
