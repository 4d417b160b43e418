import Foundation
import VoCoTokenizer

// MARK: - How a model directory says to rank images for a question (relevance.json)

/// The planner's rules, read from `relevance.json` in the model directory (Schemas/model-format.md,
/// "relevance.json"). A rule whose pattern matches the question gives yes/no probe questions
/// (asked of each image's cache alone; the image's relevance is the largest log-odds
/// logit(yes) - logit(no) over its probes) and how many of the best-ranked images to place.
/// The file is not part of the model's fingerprint: it changes no cache, only which caches a
/// question reads.
public struct RelevanceRules: Sendable {
    public struct Rule: Sendable {
        /// Matched against the whole question (trimmed), case-insensitively.
        public let pattern: String
        let regex: NSRegularExpression
        /// Probe questions; `$1`, `$2`... are the pattern's groups.
        public let probes: [String]
        /// How many of the best-ranked images to place (at most the model's maximum).
        public let place: Int?
        /// The question asked over the placed images instead of the user's (`$1`... allowed);
        /// nil = the user's question.
        public let ask: String?
    }

    public let path: String
    public let rules: [Rule]
    /// The token the model answers a probe with for yes, and for no.
    public let yesToken: Int
    public let noToken: Int
    /// Caches per batched probe pass.
    public let batch: Int

    public static let fileName = "relevance.json"

    /// The rules of the model directory, or nil when it has no relevance.json.
    public static func load(directory: String, tokenizer: Tokenizer) throws -> RelevanceRules? {
        let path = (directory as NSString).appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else { throw RelevanceError(path: path, reason: "cannot read the file") }
        return try RelevanceRules(json: data, path: path, tokenizer: tokenizer)
    }

    public init(json data: Data, path: String, tokenizer: Tokenizer) throws {
        self.path = path
        func fail(_ reason: String) -> RelevanceError { RelevanceError(path: path, reason: reason) }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw fail("not a JSON object")
        }
        guard let format = root["format"] as? Int, format == 1 else { throw fail("'format' must be 1") }
        func token(_ field: String) throws -> Int {
            guard let name = root[field] as? String, let id = tokenizer.tokenToId(name) else {
                throw fail("'\(field)' must name one token of the model's vocabulary")
            }
            return id
        }
        yesToken = try token("yes_token")
        noToken = try token("no_token")
        if let b = root["batch"] {
            guard let b = b as? Int, (1...4096).contains(b) else { throw fail("'batch' must be an integer in 1...4096") }
            batch = b
        } else {
            batch = 64
        }
        guard let list = root["rules"] as? [[String: Any]] else { throw fail("'rules' must be a list of objects") }
        rules = try list.enumerated().map { i, object in
            guard let pattern = object["pattern"] as? String else { throw fail("rules[\(i)].pattern must be a string") }
            let regex: NSRegularExpression
            do { regex = try NSRegularExpression(pattern: pattern, options: [.caseInsensitive]) } catch {
                throw fail("rules[\(i)].pattern is not a regular expression: \(pattern)")
            }
            guard let probes = object["probes"] as? [String], !probes.isEmpty else {
                throw fail("rules[\(i)].probes must be a non-empty list of strings")
            }
            var place: Int?
            if let p = object["place"] {
                guard let p = p as? Int, p >= 1 else { throw fail("rules[\(i)].place must be an integer >= 1") }
                place = p
            }
            var ask: String?
            if let a = object["ask"] {
                guard let a = a as? String, !a.isEmpty else { throw fail("rules[\(i)].ask must be a non-empty string") }
                ask = a
            }
            return Rule(pattern: pattern, regex: regex, probes: probes, place: place, ask: ask)
        }
    }

    /// What the first matching rule makes of `question`, or nil when none matches.
    public func match(_ question: String) -> Match? {
        let q = question.trimmingCharacters(in: .whitespacesAndNewlines)
        let range = NSRange(q.startIndex..., in: q)
        for (index, rule) in rules.enumerated() {
            guard let m = rule.regex.firstMatch(in: q, options: [.anchored], range: range), m.range == range else { continue }
            func fill(_ template: String) -> String { rule.regex.replacementString(for: m, in: q, offset: 0, template: template) }
            return Match(rule: index, probes: rule.probes.map(fill), place: rule.place, ask: rule.ask.map(fill))
        }
        return nil
    }

    public struct Match: Sendable, Equatable {
        public let rule: Int
        public let probes: [String]
        public let place: Int?
        public let ask: String?
    }
}

public struct RelevanceError: Error, CustomStringConvertible, LocalizedError, Sendable {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
    public var errorDescription: String? { description }
}
