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
        public let probes: [Probe]
        /// How many of the best-ranked images to place (at most the model's maximum).
        public let place: Int?
        /// The question asked over the placed images instead of the user's (`$1`... allowed);
        /// nil = the user's question.
        public let ask: String?
        /// The relevance head's phrase (`$1`... allowed): when the model has a head that knows
        /// it, the head scores the images instead of the probes.
        public let target: String?
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
            guard let list = object["probes"] as? [Any], !list.isEmpty else {
                throw fail("rules[\(i)].probes must be a non-empty list")
            }
            let probes = try list.enumerated().map { j, item -> Probe in
                if let question = item as? String { return Probe(question: question, answer: nil, against: nil) }
                guard let o = item as? [String: Any], let question = o["question"] as? String, let answer = o["answer"] as? String,
                      !answer.isEmpty else {
                    throw fail("rules[\(i)].probes[\(j)] must be a string or an object with 'question' and 'answer' strings")
                }
                if let against = o["against"], !(against is String) { throw fail("rules[\(i)].probes[\(j)].against must be a string") }
                return Probe(question: question, answer: answer, against: o["against"] as? String)
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
            var target: String?
            if let t = object["target"] {
                guard let t = t as? String, !t.isEmpty else { throw fail("rules[\(i)].target must be a non-empty string") }
                target = t
            }
            return Rule(pattern: pattern, regex: regex, probes: probes, place: place, ask: ask, target: target)
        }
    }

    /// What the first matching rule makes of `question`, or nil when none matches.
    public func match(_ question: String) -> Match? {
        let q = question.trimmingCharacters(in: .whitespacesAndNewlines)
        let range = NSRange(q.startIndex..., in: q)
        for (index, rule) in rules.enumerated() {
            guard let m = rule.regex.firstMatch(in: q, options: [.anchored], range: range), m.range == range else { continue }
            func fill(_ template: String) -> String { rule.regex.replacementString(for: m, in: q, offset: 0, template: template) }
            let probes = rule.probes.map { Probe(question: fill($0.question), answer: $0.answer.map(fill), against: $0.against.map(fill)) }
            return Match(rule: index, probes: probes, place: rule.place, ask: rule.ask.map(fill), target: rule.target.map(fill))
        }
        return nil
    }

    /// A question asked of each image alone. A plain string is a yes/no question scored by the
    /// log-odds logit(yes_token) - logit(no_token); an object scores the first token of `answer`
    /// against the first token of `against` (log-odds), or, without `against`, by its
    /// log-probability over the whole vocabulary.
    public struct Probe: Sendable, Equatable {
        public let question: String
        public let answer: String?
        public let against: String?
    }

    public struct Match: Sendable, Equatable {
        public let rule: Int
        public let probes: [Probe]
        public let place: Int?
        public let ask: String?
        public let target: String?
    }
}

public struct RelevanceError: Error, CustomStringConvertible, LocalizedError, Sendable {
    public let path: String
    public let reason: String
    /// The fingerprint a relevance head was trained for, when that is why it is refused.
    public var madeFor: String? = nil
    public var description: String { "\(path): \(reason)" }
    public var errorDescription: String? { description }
}
