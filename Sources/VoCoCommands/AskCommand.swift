import ArgumentParser
import Foundation
import VoCoModel
import VoCoPipeline

/// `voco ask --image a.png --image b.jpg "Which image has a red circle?"`: compresses the images
/// and answers the question from their VoCo caches.
struct AskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask",
        abstract: "Answer a question about images (numbered image 1, image 2, ... in the order given)."
    )

    @Option(help: "Model directory (default: $VOCO_MODEL, else the bundled Models/voco-shapes).")
    var model: String?

    @Option(name: .customLong("image"), help: "An image file (JPEG or PNG); repeat for several.")
    var images: [String] = []

    @OptionGroup var sampling: SamplingOptions

    @OptionGroup var compute: BackendOptions

    @Flag(help: "Print a JSON object (answer, images with digests, tokens) instead of the answer text.")
    var json = false

    @Flag(help: "Answer even with more images than the model was trained to read at once (voco.max_images); warns instead of refusing.")
    var allowOverMaxImages = false

    @Argument(help: "The question.")
    var question: String

    func run() throws {
        let directory = model ?? DefaultModel.path()
        let answering = try AnsweringModel(directory: directory, options: compute.loadOptions)
        compute.report(answering.engine)
        let options = sampling.generation
        // Before any image is read: the trained maximum, then whether the caches, the prompt and
        // the answer fit the context (rows per image are known from the settings).
        do {
            if let warning = try answering.checkImageCount(images.count, allowOverMaximum: allowOverMaxImages) {
                FileHandle.standardError.write(Data("warning: \(warning); answering anyway (--allow-over-max-images)\n".utf8))
            }
        } catch let error as PipelineError {
            throw CommandFailure("\(error); ask about fewer images, or pass --allow-over-max-images to answer anyway")
        }
        try answering.checkQuestion(question, images: images.count, options: options)
        let compressed = images.isEmpty ? [] : try answering.compress(imagePaths: images)
        if json {
            let answer = try answering.answer(question, caches: compressed.map(\.cache), options: options)
            let object: [String: Any] = [
                "question": question,
                "answer": answer.text,
                "tokens": answer.tokens,
                "model": directory,
                "images": compressed.enumerated().map { i, image in
                    ["number": i + 1, "path": image.source, "sha256": image.digest.map { String(format: "%02x", $0) }.joined(),
                     "width": image.width, "height": image.height, "format": image.format.rawValue, "cacheRows": image.cache.rows] as [String: Any]
                },
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else {
            var printed = ""
            _ = try answering.answer(question, caches: compressed.map(\.cache), options: options) { chunk in
                // Streamed as it is generated; leading whitespace of the answer is not printed.
                let text = printed.isEmpty ? String(chunk.drop { $0.isWhitespace }) : chunk
                printed += text
                FileHandle.standardOutput.write(Data(text.utf8))
            }
            print("")
        }
    }
}
