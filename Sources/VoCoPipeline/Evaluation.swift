import Foundation
import VoCoModel

// MARK: - A question split (questions.jsonl, images relative to it)

/// One line of a split's `questions.jsonl`: `{"id", "images", "question", "answer", "type"}`,
/// image paths relative to the file's folder, numbered in the order the question refers to them.
public struct EvaluationQuestion: Codable, Sendable, Equatable {
    public var id: String
    public var images: [String]
    public var question: String
    public var answer: String
    public var type: String
}

public struct EvaluationSplit: Sendable {
    /// The questions file.
    public let path: String
    public let questions: [EvaluationQuestion]

    public init(path: String, questions: [EvaluationQuestion]) {
        self.path = path
        self.questions = questions
    }

    /// `path` is a `questions.jsonl` file or the folder holding one.
    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        let file = exists && isDirectory.boolValue ? (path as NSString).appendingPathComponent("questions.jsonl") : path
        guard let data = FileManager.default.contents(atPath: file) else {
            throw PipelineError.invalidSplit(path: file, line: 0, reason: "cannot read the file (expected questions.jsonl with one JSON question per line)")
        }
        let decoder = JSONDecoder()
        var questions: [EvaluationQuestion] = []
        for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
            do {
                questions.append(try decoder.decode(EvaluationQuestion.self, from: Data(line.utf8)))
            } catch {
                throw PipelineError.invalidSplit(path: file, line: number + 1, reason: "not a question object with id, images, question, answer, type (\(error))")
            }
        }
        self.path = file
        self.questions = questions
    }

    /// Where a question's image lives.
    public func imagePath(_ relative: String) -> String {
        relative.hasPrefix("/") ? relative : ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(relative)
    }
}

// MARK: - Scores

/// Correct and total answers.
public struct Score: Codable, Sendable, Equatable {
    public var correct = 0
    public var total = 0
    public var percent: Double { total == 0 ? 0 : 100 * Double(correct) / Double(total) }

    public init(correct: Int = 0, total: Int = 0) { self.correct = correct; self.total = total }
    public init(from decoder: Decoder) throws {
        var c = try decoder.unkeyedContainer()
        correct = try c.decode(Int.self)
        total = try c.decode(Int.self)
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(correct)
        try c.encode(total)
    }
}

public struct Prediction: Codable, Sendable, Equatable {
    public var answer: String
    /// Generated ids (the Swift report leaves out the stop token).
    public var ids: [Int]
    public var correct: Bool?
}

/// The result of running a model over a split. The JSON form is the one
/// `Tools/demo/evaluate.py` writes, so either side's file can be compared or tabulated.
public struct EvaluationReport: Codable, Sendable {
    public var model: String
    public var split: String
    public var mode: String
    public var k: Int
    public var seconds: Double
    /// Question type -> score, plus "overall".
    public var accuracy: [String: Score]
    public var predictions: [String: Prediction]

    public var overall: Score { accuracy["overall"] ?? Score() }

    public static func load(path: String) throws -> EvaluationReport {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PipelineError.invalidSplit(path: path, line: 0, reason: "cannot read the predictions file")
        }
        do { return try JSONDecoder().decode(EvaluationReport.self, from: data) } catch {
            throw PipelineError.invalidSplit(path: path, line: 0, reason: "not a predictions report (\(error))")
        }
    }

    /// Questions both reports answered, and how many of them got the same answer text.
    public func agreement(with other: EvaluationReport) -> (same: Int, compared: Int, differing: [String]) {
        var same = 0, compared = 0, differing: [String] = []
        for (id, mine) in predictions.sorted(by: { $0.key < $1.key }) {
            guard let theirs = other.predictions[id] else { continue }
            compared += 1
            if mine.answer == theirs.answer { same += 1 } else { differing.append(id) }
        }
        return (same, compared, differing)
    }
}

// MARK: - Running a split

extension AnsweringModel {
    /// Answers every question of `split` greedily: each distinct image is compressed once (in
    /// batches), then each question runs the query pass over its images' caches.
    public func evaluate(_ split: EvaluationSplit, maxNewTokens: Int = 8, batchSize: Int = 16,
                         progress: ((Int, Int) -> Void)? = nil) throws -> EvaluationReport {
        let start = Date()
        let caches = try caches(of: split, batchSize: batchSize)
        var report = try evaluate(split, caches: caches, maxNewTokens: maxNewTokens, progress: progress)
        report.seconds = Date().timeIntervalSince(start)
        return report
    }

    /// The cache of every distinct image of `split`, by its path (`split.imagePath`); empty for a
    /// text-only model.
    public func caches(of split: EvaluationSplit, batchSize: Int = 16) throws -> [String: VoCoCache] {
        guard engine.vision != nil else { return [:] }
        var seen = Set<String>()
        let paths = split.questions.flatMap(\.images).map(split.imagePath).filter { seen.insert($0).inserted }
        var caches: [String: VoCoCache] = [:]
        for (path, image) in zip(paths, try compress(imagePaths: paths, batchSize: batchSize)) { caches[path] = image.cache }
        return caches
    }

    /// Answers every question of `split` greedily over the given caches (by image path, as
    /// `caches(of:)` makes them): the query pass alone.
    public func evaluate(_ split: EvaluationSplit, caches: [String: VoCoCache], maxNewTokens: Int = 8,
                         progress: ((Int, Int) -> Void)? = nil) throws -> EvaluationReport {
        let start = Date()
        var accuracy: [String: Score] = [:]
        var predictions: [String: Prediction] = [:]
        let options = GenerationOptions(maxNewTokens: maxNewTokens)
        for (n, q) in split.questions.enumerated() {
            let questionCaches = engine.vision == nil ? [] : q.images.compactMap { caches[split.imagePath($0)] }
            let answer = try self.answer(q.question, caches: questionCaches, options: options)
            let correct = answer.text == q.answer
            predictions[q.id] = Prediction(answer: answer.text, ids: answer.tokens, correct: correct)
            for key in [q.type, "overall"] {
                accuracy[key, default: Score()].total += 1
                if correct { accuracy[key, default: Score()].correct += 1 }
            }
            progress?(n + 1, split.questions.count)
        }
        let textOnly = engine.vision == nil
        return EvaluationReport(model: directory, split: split.path, mode: textOnly ? "text-only" : settings.mode.rawValue,
                                k: textOnly ? 0 : settings.numTokens, seconds: Date().timeIntervalSince(start),
                                accuracy: accuracy, predictions: predictions)
    }
}
