import Foundation
import VoCoJSON

// MARK: - Decoding helpers that name the field at fault

/// A string key for config containers (config.json has many keys we ignore).
struct ConfigKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// A config value we refuse, thrown while decoding and turned into a `ModelError` that names
/// the file by `ConfigFile.decode`.
struct ConfigValueError: Error {
    enum Kind { case unsupported(supported: String), invalid(expected: String) }
    let field: String
    let value: String
    let kind: Kind
}

/// A keyed container with the helpers every config section uses.
struct ConfigContainer {
    let container: KeyedDecodingContainer<ConfigKey>

    init(_ decoder: Decoder) throws { container = try decoder.container(keyedBy: ConfigKey.self) }
    init(_ container: KeyedDecodingContainer<ConfigKey>) { self.container = container }

    /// The dotted path of `key` from the file's root (`vision_config.hidden_size`).
    func path(_ key: String) -> String {
        (container.codingPath.map(\.stringValue) + [key]).joined(separator: ".")
    }

    func contains(_ key: String) -> Bool { container.contains(ConfigKey(key)) }

    /// Present and not null.
    func has(_ key: String) -> Bool {
        contains(key) && ((try? container.decodeNil(forKey: ConfigKey(key))) == false)
    }

    func required<T: Decodable>(_ key: String, _ type: T.Type = T.self) throws -> T {
        try container.decode(T.self, forKey: ConfigKey(key))
    }

    func optional<T: Decodable>(_ key: String, default value: T) throws -> T {
        has(key) ? try container.decode(T.self, forKey: ConfigKey(key)) : value
    }

    func optional<T: Decodable>(_ key: String, _ type: T.Type = T.self) throws -> T? {
        has(key) ? try container.decode(T.self, forKey: ConfigKey(key)) : nil
    }

    func nested(_ key: String) throws -> ConfigContainer {
        ConfigContainer(try container.nestedContainer(keyedBy: ConfigKey.self, forKey: ConfigKey(key)))
    }

    func value(_ key: String) -> String {
        ((try? container.decode(JSONValue.self, forKey: ConfigKey(key))) ?? .null).description
    }

    // MARK: Checks

    func positive(_ key: String, _ n: Int) throws -> Int {
        guard n > 0 else { throw ConfigValueError(field: path(key), value: "\(n)", kind: .invalid(expected: "a positive integer")) }
        return n
    }

    /// A finite number `>= 0` (`above: false`) or `> 0` (`above: true`): eps, theta.
    func finite(_ key: String, _ x: Double, above zero: Bool) throws -> Double {
        guard x.isFinite, zero ? x > 0 : x >= 0 else {
            throw ConfigValueError(field: path(key), value: "\(x)", kind: .invalid(expected: zero ? "a finite number > 0" : "a finite number >= 0"))
        }
        return x
    }

    /// A token id inside `0 ..< vocabularySize`.
    func token(_ key: String, _ id: Int, vocabularySize: Int) throws -> Int {
        guard (0..<vocabularySize).contains(id) else {
            throw ConfigValueError(field: path(key), value: "\(id)", kind: .invalid(expected: "a token id inside the vocabulary (0 ..< vocab_size \(vocabularySize))"))
        }
        return id
    }

    /// The product of `factors`, refused when it overflows or exceeds `ConfigLimits.maximumElements`
    /// (a tensor or buffer no machine could hold), naming the largest factor's field; `shown`
    /// describes the product when its factors are derived (patches from image and patch size).
    func elements(_ what: String, _ factors: [(field: String, value: Int)], shown: String? = nil) throws -> Int {
        var product = 1, overflow = false
        for f in factors where !overflow { (product, overflow) = product.multipliedReportingOverflow(by: f.value) }
        guard overflow || product > ConfigLimits.maximumElements else { return product }
        let blamed = factors.max { $0.value < $1.value }?.field ?? what
        let terms = shown ?? factors.map { "\($0.field) \($0.value)" }.joined(separator: " x ")
        throw ConfigValueError(field: path(blamed), value: value(blamed),
                               kind: .invalid(expected: "sizes whose product fits in memory (\(what): \(terms) is more than 2^36 elements)"))
    }

    /// A string field that must be one of `allowed`.
    func oneOf(_ key: String, _ value: String, _ allowed: [String]) throws -> String {
        guard allowed.contains(value) else {
            throw ConfigValueError(field: path(key), value: "\"\(value)\"", kind: .unsupported(supported: allowed.joined(separator: ", ")))
        }
        return value
    }

    /// A field that, when present and not null, must equal `allowed`.
    func only<T: Decodable & Equatable>(_ key: String, _ allowed: T, describedAs supported: String) throws {
        guard has(key) else { return }
        guard (try? container.decode(T.self, forKey: ConfigKey(key))) == allowed else {
            throw ConfigValueError(field: path(key), value: value(key), kind: .unsupported(supported: supported))
        }
    }

    /// A field that must be absent or null.
    func absent(_ key: String) throws {
        if has(key) { throw ConfigValueError(field: path(key), value: value(key), kind: .unsupported(supported: "null")) }
    }
}

// MARK: - Limits

enum ConfigLimits {
    /// Elements one tensor or pass buffer may have: 2^36 (256 GiB of F32), far above the
    /// largest tensor of any released checkpoint (a 405B model's embedding is 2.1e9).
    static let maximumElements = 1 << 36
}

// MARK: - Reading a config file

enum ConfigFile {
    /// Decodes `T` from the JSON file at `path`, with errors that name the file and field.
    static func decode<T: Decodable>(_ type: T.Type, path: String) throws -> T {
        let data: Data
        // A FIFO or device would block or never end: only regular files are read.
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
            throw ModelError.cannotRead(path: path, reason: "not a regular file")
        }
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ModelError.cannotRead(path: path, reason: (error as NSError).localizedDescription)
        }
        return try decode(type, data: data, path: path)
    }

    static func decode<T: Decodable>(_ type: T.Type, data: Data, path: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as ConfigValueError {
            switch error.kind {
            case let .unsupported(supported):
                throw ModelError.unsupportedConfigValue(path: path, field: error.field, value: error.value, supported: supported)
            case let .invalid(expected):
                throw ModelError.invalidConfigValue(path: path, field: error.field, value: error.value, expected: expected)
            }
        } catch let error as DecodingError {
            throw modelError(error, path: path)
        }
    }

    private static func modelError(_ error: DecodingError, path: String) -> ModelError {
        func dotted(_ keys: [CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case let .keyNotFound(key, context):
            return .missingConfigField(path: path, field: dotted(context.codingPath + [key]))
        case let .valueNotFound(type, context):
            return .invalidConfigValue(path: path, field: dotted(context.codingPath), value: "null", expected: "\(type)")
        case let .typeMismatch(type, context):
            return .invalidConfigValue(path: path, field: dotted(context.codingPath), value: "a value of another type", expected: "\(type)")
        case let .dataCorrupted(context):
            if context.codingPath.isEmpty {
                return .invalidJSON(path: path, reason: context.debugDescription)
            }
            return .invalidConfigValue(path: path, field: dotted(context.codingPath), value: "unreadable", expected: context.debugDescription)
        @unknown default:
            return .invalidJSON(path: path, reason: "\(error)")
        }
    }
}
