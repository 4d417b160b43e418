/// A value at a dotted path in a file, with typed accessors whose errors name the file and the path.
struct JSONField {
    let value: JSONValue
    let path: String  // the file
    let field: String // e.g. "model.vocab"

    init(_ value: JSONValue, path: String, field: String = "") {
        self.value = value
        self.path = path
        self.field = field
    }

    // MARK: - Navigation

    subscript(key: String) -> JSONField {
        var child: JSONValue = .null
        if case let .object(members) = value, let m = members.last(where: { $0.key.utf8.elementsEqual(key.utf8) }) {
            child = m.value // a repeated key: the last one counts
        }
        return JSONField(child, path: path, field: field.isEmpty ? key : "\(field).\(key)")
    }

    var isNull: Bool { if case .null = value { return true } else { return false } }

    func has(_ key: String) -> Bool {
        if case let .object(members) = value { return members.contains { $0.key.utf8.elementsEqual(key.utf8) } }
        return false
    }

    func fail(_ problem: String) -> TokenizerError {
        .invalidField(path: path, field: field.isEmpty ? "(top level)" : field, problem: problem)
    }

    func expected(_ what: String) -> TokenizerError { fail("expected \(what), found \(value.kindName)") }

    // MARK: - Typed values

    func string() throws -> String {
        guard case let .string(s) = value else { throw expected("a string") }
        return s
    }

    func optionalString() throws -> String? { isNull ? nil : try string() }

    func int() throws -> Int {
        guard case let .number(d) = value else { throw expected("an integer") }
        guard d == d.rounded(), abs(d) < 9.0e15 else { throw fail("expected an integer, found \(d)") }
        return Int(d)
    }

    func double() throws -> Double {
        guard case let .number(d) = value else { throw expected("a number") }
        return d
    }

    func bool(default fallback: Bool) throws -> Bool {
        if isNull { return fallback }
        guard case let .bool(b) = value else { throw expected("a boolean") }
        return b
    }

    func array() throws -> [JSONField] {
        guard case let .array(a) = value else { throw expected("an array") }
        return a.enumerated().map { JSONField($1, path: path, field: "\(field)[\($0)]") }
    }

    /// Object members in file order, keys exactly as written.
    func members() throws -> [(key: String, value: JSONField)] {
        guard case let .object(members) = value else { throw expected("an object") }
        let prefix = field.isEmpty ? "" : field + "."
        return members.map { ($0.key, JSONField($0.value, path: path, field: prefix + $0.key)) }
    }

    /// A single Unicode scalar given as a one-character string (Metaspace replacement, Strip content).
    func scalar() throws -> Unicode.Scalar {
        let s = try string()
        guard s.unicodeScalars.count == 1, let c = s.unicodeScalars.first else {
            throw fail("expected a single character, found \"\(s)\"")
        }
        return c
    }

    /// The `type` of a component, or a clear error when it is missing.
    func componentType() throws -> String {
        guard has("type") else { throw fail("component has no 'type'") }
        return try self["type"].string()
    }
}
