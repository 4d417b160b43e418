import Foundation
import Testing
import VoCoModel
import VoCoPipeline

// MARK: - Bad input is refused by name, before any computation

@Suite struct PipelineErrorTests {
    @Test func missingModelDirectoryIsNamed() {
        #expect(throws: PipelineError.modelNotFound(path: "/nonexistent/model")) {
            try AnsweringModel(directory: "/nonexistent/model")
        }
    }

    @Test func emptyQuestionIsRefused() throws {
        let model = try bundledModel.get()
        #expect(throws: PipelineError.emptyQuestion) { try model.answer("  \n", caches: []) }
    }

    @Test func questionOverTooManyImagesIsRefusedBeforeComputing() throws {
        let model = try bundledModel.get()
        let split = try EvaluationSplit(path: samplesPath)
        let image = try model.compress(imagePaths: [split.imagePath(split.questions[0].images[0])])[0]
        let fits = model.contextLength / image.cache.rows + 1
        do {
            _ = try model.answer("How many images contain a red circle?", caches: Array(repeating: image.cache, count: fits))
            Issue.record("\(fits) images should not fit a context of \(model.contextLength)")
        } catch let PipelineError.contextTooSmall(images, _, _, _, needed, context) {
            #expect(images == fits && needed > context && context == model.contextLength)
        }
    }

    @Test func unreadableImageIsNamed() throws {
        let model = try bundledModel.get()
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("voco-pipeline-not-an-image.jpg").path
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: bad))
        defer { try? FileManager.default.removeItem(atPath: bad) }
        do {
            _ = try model.compress(imagePaths: [bad])
            Issue.record("a text file named .jpg was accepted")
        } catch {
            #expect("\(error)".contains(bad))
        }
    }

    @Test func malformedSplitLineIsNamed() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("voco-pipeline-split.jsonl").path
        try Data("""
            {"id": "a", "images": [], "question": "Q?", "answer": "x", "type": "t"}
            {"id": 3}

            """.utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        do {
            _ = try EvaluationSplit(path: file)
            Issue.record("a malformed line was accepted")
        } catch let PipelineError.invalidSplit(path, line, _) {
            #expect(path == file && line == 2)
        }
    }
}
