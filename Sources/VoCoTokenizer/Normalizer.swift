/// tokenizer.json `normalizer`: the LLaMA-family subset. Applied to each stretch of text between
/// added tokens separately (so Prepend("▁") puts a ▁ in front of every such stretch).
indirect enum Normalizer {
    case prepend([Unicode.Scalar])
    case replace(TextPattern, content: [Unicode.Scalar])
    case sequence([Normalizer])

    static let supported = ["Prepend", "Replace", "Sequence"]

    // MARK: - Loading

    init(_ field: JSONField) throws {
        let type = try field.componentType()
        switch type {
        case "Prepend":
            self = .prepend(Array(try field["prepend"].string().unicodeScalars))
        case "Replace":
            self = .replace(try TextPattern(field["pattern"]), content: Array(try field["content"].string().unicodeScalars))
        case "Sequence":
            self = .sequence(try field["normalizers"].array().map(Normalizer.init))
        default:
            throw TokenizerError.unsupportedComponent(path: field.path, kind: "normalizer", type: type, supported: Normalizer.supported)
        }
    }

    // MARK: - Normalising

    func normalize(_ text: inout NormalizedText) {
        switch self {
        case let .prepend(prefix):
            text.prepend(prefix)
        case let .replace(pattern, content):
            text.replace(pattern.matches(in: text.scalars), with: content)
        case let .sequence(steps):
            for step in steps { step.normalize(&text) }
        }
    }
}
