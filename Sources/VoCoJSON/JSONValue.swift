import Foundation

/// A parsed JSON value that keeps booleans, numbers and null apart (JSONSerialization's
/// NSNumber does not on Linux). The config readers use it to look at fields one by one
/// (preprocessor_config.json) and to quote a refused value in an error (config.json).
/// The tokenizer has its own parser: tokenizer.json needs object keys exactly as written and
/// in file order, which a Swift dictionary does not keep.
public enum JSONValue: Decodable, Equatable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    /// Parses a JSON object; nil when the data is not one.
    public static func object(from data: Data) -> [String: JSONValue]? {
        guard case let .object(fields)? = try? JSONDecoder().decode(JSONValue.self, from: data) else { return nil }
        return fields
    }

    /// The value as JSON text (object keys sorted), short enough to quote in an error message.
    public var description: String {
        switch self {
        case .null: return "null"
        case let .bool(b): return "\(b)"
        case let .number(n): return n == n.rounded() && abs(n) < 1e15 ? "\(Int(n))" : "\(n)"
        case let .string(s): return "\"\(s)\""
        case let .array(a): return "[\(a.map(\.description).joined(separator: ", "))]"
        case let .object(o): return "{\(o.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", "))}"
        }
    }
}
