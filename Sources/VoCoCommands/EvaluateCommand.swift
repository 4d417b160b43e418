import ArgumentParser
import Foundation
import VoCoPipeline

/// `voco eval --split DIR --model A [--model B ...]`: scores models on a question split through
/// the Swift engine, prints accuracy per question type and the retention table.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score models on a question split (questions.jsonl) and print accuracy per question type and retention.",
        discussion: """
        Retention = (x - lower) / (upper - lower) on overall accuracy, where upper is the model in `full` mode and \
        lower the text-only model, when both are among the models. --compare gives, for each model in order, a \
        predictions file of another implementation (Tools/demo/evaluate.py) to count agreeing answers.
        """
    )

    @Option(help: "A split folder holding questions.jsonl, or the file itself.")
    var split: String

    @Option(name: .customLong("model"), help: "Model directory; repeat for several.")
    var models: [String] = []

    @Option(name: .customLong("compare"), help: "Reference predictions JSON for the model at the same position.")
    var references: [String] = []

    @Option(help: "Write each model's report as JSON into this folder (<model name>.json).")
    var reportDir: String?

    @Option(help: "Answer tokens at most.")
    var maxTokens = 8

    @Option(help: "Only the first N questions.")
    var limit: Int?

    @OptionGroup var compute: BackendOptions

    func validate() throws {
        try require("max-tokens", maxTokens, in: 1...Int.max)
        if let limit { try require("limit", limit, in: 0...Int.max) }
        if references.count > models.count { throw ValidationError("more --compare files (\(references.count)) than --model directories (\(models.count))") }
    }

    func run() throws {
        var split = try EvaluationSplit(path: split)
        if let limit { split = EvaluationSplit(path: split.path, questions: Array(split.questions.prefix(limit))) }
        let directories = models.isEmpty ? [DefaultModel.path()] : models
        var reports: [EvaluationReport] = []
        for (index, directory) in directories.enumerated() {
            let model = try AnsweringModel(directory: directory, options: compute.loadOptions)
            compute.report(model.engine)
            let report = try model.evaluate(split, maxNewTokens: maxTokens)
            reports.append(report)
            print("\(directory): \(report.overall.correct)/\(report.overall.total) = \(String(format: "%.1f", report.overall.percent))% in \(String(format: "%.1f", report.seconds)) s")
            for (type, score) in report.accuracy.sorted(by: { $0.key < $1.key }) where type != "overall" {
                print("  \(type): \(score.correct)/\(score.total) = \(String(format: "%.1f", score.percent))%")
            }
            if index < references.count {
                let reference = try EvaluationReport.load(path: references[index])
                let agreement = reference.agreement(with: report)
                let percent = agreement.compared == 0 ? 0 : 100 * Double(agreement.same) / Double(agreement.compared)
                print("  agreement with \(references[index]): \(agreement.same)/\(agreement.compared) = \(String(format: "%.2f", percent))%"
                      + (agreement.differing.isEmpty ? "" : " (differ: \(agreement.differing.prefix(10).joined(separator: ", "))\(agreement.differing.count > 10 ? ", ..." : ""))"))
            }
            if let reportDir {
                try FileManager.default.createDirectory(atPath: reportDir, withIntermediateDirectories: true)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let name = (directory as NSString).lastPathComponent
                try encoder.encode(report).write(to: URL(fileURLWithPath: reportDir).appendingPathComponent("\(name).json"))
            }
        }
        if reports.count > 1 {
            print("")
            print(RetentionTable.markdown(reports))
        }
    }
}
