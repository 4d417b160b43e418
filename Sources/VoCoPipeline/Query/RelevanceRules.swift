import Foundation
import VoCoTokenizer

// MARK: - Which probe question tells whether an image matters to a question

/// The model directory's `relevance.json` (Schemas/model-format.md): rules that rewrite a
/// question about many images into a yes/no probe asked of each image alone, and the answer
/// words whose logits the probe compares. The rules belong to the model, like its prompt
/// template: they name questions in the wordings it was trained on. The file is not part of the
/// model fingerprint (caches do not depend on it).
public struct RelevanceRules: Sendable {
    public struct Rule: Sendable {
        public let pattern: NSRegularExpression
        public let probe: String
        /// The relevance head's target phrase (`$1`... filled from the match), when the model has a head.
        public let target: String?
        /// Most images to place when this rule ranks (still within the trained maximum and the context).
        public let images: Int?
    }

    public static let fileName = "relevance.json"
    public let rules: [Rule]
    public let yes: Int
    public let no: Int

    private struct File: Decodable {
        struct RuleEntry: Decodable {
            var pattern: String
            var probe: String
            var target: String?
            var images: Int?
        }
        var version: Int
        var yes: String
        var no: String
        var rules: [RuleEntry]
    }

    /// The rules of the model in `directory`; nil when it has no relevance.json.
    public static func load(directory: String, tokenizer: Tokenizer) throws -> RelevanceRules? {
        let path = (directory as NSString).appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw RelevanceRulesError(path: path, reason: "cannot read: \(error.localizedDescription)") }
        guard data.count <= 1 << 20 else { throw RelevanceRulesError(path: path, reason: "\(data.count) bytes; a rules file is at most 1 MiB") }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw RelevanceRulesError(path: path, reason: "not a rules file: \(error)")
        }
        guard file.version == 1 else { throw RelevanceRulesError(path: path, reason: "version \(file.version); this build reads version 1") }
        func token(_ word: String, _ field: String) throws -> Int {
            guard let first = tokenizer.encode(word, addSpecialTokens: false).first else {
                throw RelevanceRulesError(path: path, reason: "\(field) \"\(word)\" encodes to no token")
            }
            return first
        }
        let yes = try token(file.yes, "yes"), no = try token(file.no, "no")
        guard yes != no else { throw RelevanceRulesError(path: path, reason: "yes \"\(file.yes)\" and no \"\(file.no)\" begin with the same token") }
        let rules = try file.rules.enumerated().map { i, entry -> Rule in
            let regex: NSRegularExpression
            do { regex = try NSRegularExpression(pattern: entry.pattern, options: [.caseInsensitive]) } catch {
                throw RelevanceRulesError(path: path, reason: "rules[\(i)].pattern \"\(entry.pattern.prefix(200))\" is not a regular expression")
            }
            guard !entry.probe.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw RelevanceRulesError(path: path, reason: "rules[\(i)].probe is empty")
            }
            if let images = entry.images, !(1...4096).contains(images) {
                throw RelevanceRulesError(path: path, reason: "rules[\(i)].images \(images) must be between 1 and 4096")
            }
            return Rule(pattern: regex, probe: entry.probe, target: entry.target, images: entry.images)
        }
        return RelevanceRules(rules: rules, yes: yes, no: no)
    }

    /// The first rule whose pattern matches the whole (trimmed) question, and its probe with
    /// `$1`... filled from the match.
    public func probe(for question: String) -> (probe: String, target: String?, rule: Rule)? {
        let text = question.trimmingCharacters(in: .whitespacesAndNewlines)
        let range = NSRange(text.startIndex..., in: text)
        for rule in rules {
            guard let match = rule.pattern.firstMatch(in: text, range: range), match.range == range else { continue }
            let probe = rule.pattern.replacementString(for: match, in: text, offset: 0, template: rule.probe)
            let target = rule.target.map { rule.pattern.replacementString(for: match, in: text, offset: 0, template: $0) }
            return (probe, target, rule)
        }
        return nil
    }
}

public struct RelevanceRulesError: Error, CustomStringConvertible, LocalizedError, Sendable {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
    public var errorDescription: String? { description }
}
