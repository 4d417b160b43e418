/// tokenizer.json `post_processor`, for single sequences: what `add_special_tokens` adds around the ids.
indirect enum PostProcessor {
    /// TemplateProcessing's `single` template: each item is a run of special-token ids or the sequence.
    case template([TemplateItem])
    /// ByteLevel only adjusts offsets; ids pass through.
    case byteLevel
    case sequence([PostProcessor])

    enum TemplateItem {
        case special([UInt32])
        case sequence
    }

    static let supported = ["TemplateProcessing", "ByteLevel", "Sequence"]

    // MARK: - Loading

    init(_ field: JSONField) throws {
        let type = try field.componentType()
        switch type {
        case "TemplateProcessing":
            var specials: [ExactString: [UInt32]] = [:]
            for (name, entry) in try field["special_tokens"].members() {
                specials[ExactString(name)] = try entry["ids"].array().map { id in
                    let value = try id.int()
                    guard value >= 0, value <= Int(UInt32.max) else { throw id.fail("token id \(value) is not a 32-bit unsigned integer") }
                    return UInt32(value)
                }
            }
            self = .template(try field["single"].array().map { item in
                if item.has("SpecialToken") {
                    let name = try item["SpecialToken"]["id"].string()
                    guard let ids = specials[ExactString(name)] else {
                        throw TokenizerError.unknownToken(path: field.path, field: "\(item.field).SpecialToken", token: name)
                    }
                    return .special(ids)
                }
                if item.has("Sequence") {
                    let which = try item["Sequence"]["id"].string()
                    guard which == "A" else { throw item.fail("the single-sequence template can only use sequence A, found \(which)") }
                    return .sequence
                }
                throw item.expected("{\"SpecialToken\": ...} or {\"Sequence\": ...}")
            })
        case "ByteLevel":
            self = .byteLevel
        case "Sequence":
            self = .sequence(try field["processors"].array().map(PostProcessor.init))
        default:
            throw TokenizerError.unsupportedComponent(path: field.path, kind: "post-processor", type: type, supported: PostProcessor.supported)
        }
    }

    // MARK: - Processing

    func process(_ ids: [UInt32]) -> [UInt32] {
        switch self {
        case let .template(items):
            return items.flatMap { item -> [UInt32] in
                switch item {
                case let .special(s): return s
                case .sequence: return ids
                }
            }
        case .byteLevel:
            return ids
        case let .sequence(steps):
            return steps.reduce(ids) { $1.process($0) }
        }
    }
}
