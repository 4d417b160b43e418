import Foundation
import Testing
import VoCoModel
import VoCoPipeline

// MARK: - The bundled demo model answers the committed sample questions

/// The repository root, from this file's path (Tests/VoCoPipelineTests/BundledModelTests.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
let bundledModelPath = (repositoryRoot as NSString).appendingPathComponent(DefaultModel.relativePath)
let samplesPath = (repositoryRoot as NSString).appendingPathComponent("Samples/questions.jsonl")

/// Loaded once: every test here reads it only.
let bundledModel = Result { try AnsweringModel(directory: bundledModelPath) }

@Suite struct BundledModelTests {
    /// Sample questions the bundled model answered correctly when it was measured (docs/demo-model.md:
    /// `voco eval --split Samples`). The threshold comes from that measurement, a few questions
    /// below it, not from assuming every answer is right.
    static let measuredSampleAccuracy = 57.0 / 64  // 89.1%, the same in PyTorch
    static let sampleThreshold = 53.0 / 64  // four questions below; exact agreement with PyTorch is checked below

    @Test func loadsAsTheDefaultModel() throws {
        let model = try bundledModel.get()
        #expect(model.settings.mode == .voco)
        #expect(model.settings.layout == .sequential)
        #expect(model.engine.vision != nil && model.preprocessor != nil)
        let size = try FileManager.default.contentsOfDirectory(atPath: bundledModelPath)
            .compactMap { try? FileManager.default.attributesOfItem(atPath: bundledModelPath + "/" + $0)[.size] as? Int }
            .reduce(0, +)
        #expect(size <= 20 << 20, "the bundled model must stay within 20 MB, is \(size) bytes")
        #expect(DefaultModel.path(environment: ["VOCO_MODEL": bundledModelPath]) == bundledModelPath)
    }

    @Test func answersTheSampleQuestions() throws {
        let model = try bundledModel.get()
        let split = try EvaluationSplit(path: samplesPath)
        #expect(split.questions.count >= 32)
        let report = try model.evaluate(split)
        let accuracy = Double(report.overall.correct) / Double(report.overall.total)
        #expect(accuracy >= Self.sampleThreshold,
                "\(report.overall.correct)/\(report.overall.total) sample questions right; measured \(Self.measuredSampleAccuracy)")
        // The same answers as the PyTorch model the checkpoint was exported from
        // (Tools/demo/evaluate.py Models/voco-shapes --split Samples, committed as a fixture).
        let reference = try EvaluationReport.load(path: (repositoryRoot as NSString)
            .appendingPathComponent("Tests/VoCoPipelineTests/Fixtures/samples-pytorch.json"))
        let agreement = report.agreement(with: reference)
        #expect(agreement.compared == split.questions.count)
        #expect(agreement.same == agreement.compared, "answers that differ from PyTorch: \(agreement.differing)")
    }

    @Test func answersAboutSeveralImagesInOrder() throws {
        let model = try bundledModel.get()
        let split = try EvaluationSplit(path: samplesPath)
        let multi = try #require(split.questions.first { $0.images.count >= 2 })
        let images = try model.compress(imagePaths: multi.images.map(split.imagePath))
        #expect(images.count == multi.images.count)
        var streamed = ""
        let answer = try model.answer(multi.question, caches: images.map(\.cache),
                                      options: GenerationOptions(maxNewTokens: 8)) { streamed += $0 }
        #expect(answer.images == multi.images.count)
        #expect(streamed.trimmingCharacters(in: .whitespacesAndNewlines) == answer.text)
        #expect(!answer.text.isEmpty)
    }
}
