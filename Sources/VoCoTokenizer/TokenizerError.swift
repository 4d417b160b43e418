import Foundation

/// What was wrong with which tokenizer file. Every case names the file and the field or component.
public enum TokenizerError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case cannotRead(path: String, reason: String)
    case malformedJSON(path: String, reason: String)
    /// A field has the wrong type or an impossible value (`field` is a dotted path such as `model.vocab`).
    case invalidField(path: String, field: String, problem: String)
    /// A component `type` we do not implement: kind is normalizer, pre-tokenizer, model, post-processor or decoder.
    case unsupportedComponent(path: String, kind: String, type: String, supported: [String])
    /// A component option we do not implement (dropout, truncation, padding...).
    case unsupportedOption(path: String, field: String, value: String)
    /// A merge names a token, or produces a token, that is not in the vocabulary.
    case mergeTokenMissing(path: String, merge: Int, token: String)
    /// A token the file refers to (unk_token, a post-processor's special token) is not in the vocabulary.
    case unknownToken(path: String, field: String, token: String)
    case invalidRegex(path: String, field: String, pattern: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotRead(path, reason):
            return "\(path): cannot read tokenizer file: \(reason)"
        case let .malformedJSON(path, reason):
            return "\(path): not valid JSON: \(reason)"
        case let .invalidField(path, field, problem):
            return "\(path): field '\(field)': \(problem)"
        case let .unsupportedComponent(path, kind, type, supported):
            return "unsupported \(kind) '\(type)' in \(path) (supported: \(supported.joined(separator: ", ")))"
        case let .unsupportedOption(path, field, value):
            return "unsupported option '\(field)' = \(value) in \(path)"
        case let .mergeTokenMissing(path, merge, token):
            return "\(path): merge #\(merge) needs token '\(token)', which is not in model.vocab: the merges do not belong to this vocabulary"
        case let .unknownToken(path, field, token):
            return "\(path): '\(field)' names token '\(token)', which is not in the vocabulary"
        case let .invalidRegex(path, field, pattern, reason):
            return "\(path): '\(field)' has a regular expression we cannot compile: /\(pattern)/: \(reason)"
        }
    }

    public var errorDescription: String? { description }
}
