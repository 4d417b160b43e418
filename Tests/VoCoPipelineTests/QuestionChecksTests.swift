import Foundation
import Testing
import VoCoModel
import VoCoPipeline
import VoCoTokenizer

// MARK: - A question is checked before any image is read or compressed

/// A copy of the bundled model (its files linked, not copied) with config.json edited by `edit`
/// and the files named in `removing` left out.
func bundledModelVariant(removing: Set<String> = [], _ edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("voco-pipeline-model-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    for file in try FileManager.default.contentsOfDirectory(atPath: bundledModelPath) where file != "config.json" && !removing.contains(file) {
        try FileManager.default.createSymbolicLink(atPath: dir + "/" + file, withDestinationPath: bundledModelPath + "/" + file)
    }
    let data = try Data(contentsOf: URL(fileURLWithPath: bundledModelPath + "/config.json"))
    var json = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    edit(&json)
    try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]).write(to: URL(fileURLWithPath: dir + "/config.json"))
    return dir
}

@Suite struct QuestionChecksTests {
    /// The bundled model was trained on questions over at most 4 images (Tools/demo/shapes.py,
    /// MAX_IMAGES_PER_QUESTION), and says so in config.json.
    @Test func theTrainedMaximumIsRefusedOrWarned() throws {
        let model = try bundledModel.get()
        #expect(model.settings.maxImages == 4)
        #expect(try model.checkImageCount(4) == nil)
        #expect(throws: PipelineError.tooManyImages(path: bundledModelPath, images: 50, maximum: 4)) { try model.checkImageCount(50) }
        let warning = try #require(try model.checkImageCount(5, allowOverMaximum: true))
        #expect(warning.contains("5 images") && warning.contains("at most 4") && warning.contains("voco.max_images"))
    }

    @Test func noTrainedMaximumMeansNoWarning() throws {
        let model = try AnsweringModel(directory: try bundledModelVariant { json in
            var voco = json["voco"] as? [String: Any] ?? [:]
            voco["max_images"] = nil
            json["voco"] = voco
        })
        #expect(model.settings.maxImages == nil)
        #expect(try model.checkImageCount(1000) == nil)
    }

    /// Rows per image come from the settings (k = 1 here), so 600 images are refused before any
    /// of the 600 (nonexistent) files is opened; absurd counts and token limits saturate.
    @Test func imagesThatCannotFitAreRefusedBeforeCompressing() throws {
        let model = try bundledModel.get()
        #expect(model.rowsPerImage == 1)
        let options = GenerationOptions(maxNewTokens: 32)
        do {
            try model.checkQuestion("How many images contain a red circle?", images: 600, options: options)
            Issue.record("600 images fit a context of \(model.contextLength)")
        } catch let PipelineError.contextTooSmall(images, rows, _, answer, needed, context) {
            // BOS + 64 patches place the first VoCo row at 65; text follows the 600 rows.
            #expect(images == 600 && rows == 600 && answer == 32 && needed > 665 && context == 512)
        }
        #expect(throws: PipelineError.self) { try model.checkQuestion("Q?", images: .max, options: options) }
        #expect(throws: PipelineError.self) { try model.checkQuestion("Q?", images: 1, options: GenerationOptions(maxNewTokens: .max)) }
        #expect(throws: PipelineError.emptyQuestion) { try model.checkQuestion(" ", images: 1, options: options) }
        try model.checkQuestion("Which image has a blue circle?", images: 4, options: options)
    }

    /// The check agrees with the placement the answer uses: the largest count it accepts answers.
    @Test func theCheckMatchesThePlacement() throws {
        let model = try bundledModel.get()
        let split = try EvaluationSplit(path: samplesPath)
        let image = try model.compress(imagePaths: [split.imagePath(split.questions[0].images[0])])[0]
        let options = GenerationOptions(maxNewTokens: 4)
        let question = "How many images contain a red circle?"
        var fits = 0
        while (try? model.checkQuestion(question, images: fits + 1, options: options)) != nil { fits += 1 }
        _ = try model.answer(question, caches: Array(repeating: image.cache, count: fits), options: options)
        #expect(throws: PipelineError.self) {
            try model.answer(question, caches: Array(repeating: image.cache, count: fits + 1), options: options)
        }
    }

    // MARK: - Hostile model directories, as `voco ask` loads them

    @Test func missingTokenizerIsNamed() throws {
        let dir = try bundledModelVariant(removing: ["tokenizer.json"])
        #expect(performing: { try AnsweringModel(directory: dir) }, throws: { "\($0)".contains(dir + "/tokenizer.json") })
    }

    @Test func tokenizerThatIsAFIFODoesNotHang() throws {
        let dir = try bundledModelVariant(removing: ["tokenizer.json"])
        #expect(mkfifo(dir + "/tokenizer.json", 0o600) == 0)
        #expect(throws: TokenizerError.cannotRead(path: dir + "/tokenizer.json", reason: "not a regular file")) {
            try AnsweringModel(directory: dir)
        }
    }

    @Test func missingPreprocessorConfigIsNamed() throws {
        let dir = try bundledModelVariant(removing: ["preprocessor_config.json"])
        #expect(performing: { try AnsweringModel(directory: dir) }, throws: { "\($0)".contains(dir + "/preprocessor_config.json") })
    }

    @Test func hugeKIsRefusedAtLoad() throws {
        let dir = try bundledModelVariant { json in
            var voco = json["voco"] as? [String: Any] ?? [:]
            voco["num_tokens"] = 100_000
            json["voco"] = voco
        }
        #expect(throws: ModelError.invalidConfigValue(path: dir + "/config.json", field: "voco.num_tokens", value: "100000",
                                                      expected: "BOS + 0 prefix ids + k VoCo tokens + one text token to fit max_position_embeddings (512): k at most 510, before the patches")) {
            try AnsweringModel(directory: dir)
        }
    }
}
