import Foundation

// MARK: - What every VoCo server is started with

/// Listen address, bearer token and limits, shared by every VoCo server (`voco ingestd`, and
/// the query server to come).
public struct ServerOptions: Sendable {
    /// Loopback unless told otherwise.
    public var host: String
    /// 0 = any free port (it is reported once listening).
    public var port: Int
    /// When set, every route but `/healthz` needs `Authorization: Bearer <token>`.
    public var token: String?
    /// Request bodies larger than this are refused with 413 before they are read whole.
    public var maximumBodyBytes: Int
    /// How long a graceful shutdown may take before the remaining work is cancelled.
    public var shutdownTimeout: Duration

    public static let defaultHost = "127.0.0.1"

    public init(host: String = ServerOptions.defaultHost, port: Int, token: String? = nil,
                maximumBodyBytes: Int = 64 << 20, shutdownTimeout: Duration = .seconds(10)) {
        self.host = host
        self.port = port
        self.token = token
        self.maximumBodyBytes = maximumBodyBytes
        self.shutdownTimeout = shutdownTimeout
    }

    // MARK: From the command line

    /// `HOST`, `HOST:PORT`, `:PORT`, `[IPv6]` or `[IPv6]:PORT`; a missing part keeps `defaultPort`
    /// or the loopback host.
    public static func parseListen(_ text: String, defaultPort: Int) throws -> (host: String, port: Int) {
        var host = text, portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw ServerError.invalidOption("--listen \(text): an IPv6 address needs its closing ]") }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw ServerError.invalidOption("--listen \(text): expected :PORT after ]") }
                portText = rest.dropFirst()
            }
        } else if let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon {
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
        }
        if host.isEmpty { host = defaultHost }
        var port = defaultPort
        if let portText {
            guard let value = Int(portText), (0...65535).contains(value) else {
                throw ServerError.invalidOption("--listen \(text): the port must be a number from 0 to 65535")
            }
            port = value
        }
        return (host, port)
    }

    /// The token in `path`: its first line, without surrounding whitespace. A token file that
    /// others may read is refused (it guards the whole API).
    public static func readToken(file path: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ServerError.invalidOption("--token-file \(path): cannot read it: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & 0o007 == 0 else {
            throw ServerError.invalidOption("--token-file \(path): others may read it; chmod o-rwx \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path), data.count <= 4096 else {
            throw ServerError.invalidOption("--token-file \(path): cannot read it, or it is over 4 KiB")
        }
        let token = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard token.count >= 16, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw ServerError.invalidOption("--token-file \(path): the token must be at least 16 printable ASCII characters without spaces")
        }
        return token
    }
}

/// What keeps a server from starting.
public enum ServerError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case invalidOption(String)
    case cannotPrepare(path: String, reason: String)
    /// The listen address is taken, not this machine's, or not allowed.
    case cannotListen(address: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidOption(reason): return reason
        case let .cannotPrepare(path, reason): return "\(path): \(reason)"
        case let .cannotListen(address, reason): return "cannot listen on \(address): \(reason)"
        }
    }

    public var errorDescription: String? { description }
}
