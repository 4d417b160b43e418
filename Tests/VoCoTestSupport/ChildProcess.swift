import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Programs the tests start, signal and wait for

/// A child process whose stdout and stderr go to files (read at any time, never a full pipe).
public final class ChildProcess: @unchecked Sendable {
    public let process = Process()
    public let outputPath: String
    public let errorPath: String
    public let command: String

    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, logs directory: String) throws {
        let name = "\((executable as NSString).lastPathComponent)-\(UUID().uuidString.prefix(8))"
        outputPath = (directory as NSString).appendingPathComponent("\(name).out")
        errorPath = (directory as NSString).appendingPathComponent("\(name).err")
        command = ([executable] + arguments).joined(separator: " ")
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    public var errorOutput: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

    public func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// The exit status (128 + signal when killed), or nil when it is still running after `timeout`.
    @discardableResult
    public func wait(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline { return nil }
            usleep(10_000)
        }
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    /// Kills the process if it still runs (a test that failed midway must not leave it behind).
    public func stop() {
        if process.isRunning {
            send(SIGKILL)
            wait(timeout: 10)
        }
    }

    /// Runs to completion within `timeout`; the status, stdout and stderr.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, logs: String,
                           timeout: TimeInterval = 300) throws -> (status: Int32, output: String, error: String) {
        let child = try ChildProcess(executable, arguments, environment: environment, logs: logs)
        defer { child.stop() }
        guard let status = child.wait(timeout: timeout) else {
            throw TestSupportError("\(child.command) did not finish in \(Int(timeout)) s; stderr: \(child.errorOutput.suffix(2000))")
        }
        return (status, child.output, child.errorOutput)
    }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - Paths

public enum TestPaths {
    /// The repository root, from this file's path (Tests/VoCoTestSupport/ChildProcess.swift).
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    public static let bundledModel = (repositoryRoot as NSString).appendingPathComponent("Models/voco-shapes")
    public static let samples = (repositoryRoot as NSString).appendingPathComponent("Samples")

    /// The `voco` built next to the test bundle (`VOCO_EXECUTABLE` overrides).
    public static var voco: String {
        if let path = ProcessInfo.processInfo.environment["VOCO_EXECUTABLE"] { return path }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("voco").path
    }

    /// A new empty folder under the system's temporary folder.
    public static func scratch(_ label: String) -> String {
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("voco-\(label)-\(UUID().uuidString.prefix(12))")
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
