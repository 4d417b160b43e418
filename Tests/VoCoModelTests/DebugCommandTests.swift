import ArgumentParser
import Foundation
import SafeTensors
import Testing
import VoCoCommands
@testable import VoCoModel

/// The contract commands, run as the CLI runs them, against the transformers fixtures.
@Suite struct DebugCommandTests {
    func run(_ arguments: [String]) throws {
        var command = try VoCoCommand.parseAsRoot(arguments)
        try command.run()
    }

    @Test func compressThenQueryReproduceTheReferences() throws {
        let dir = temporaryDirectory("debug-commands")
        var pixels = SafeTensorsWriter()
        try pixels.add("pixel_values", shape: [3, 3, 32, 32], floats: Fixtures.pixels())
        try pixels.write(to: dir + "/pixels.safetensors")
        let model = Fixtures.model()

        try run(["debug", "compress", "--model", model, "--pixels", dir + "/pixels.safetensors", "--out", dir + "/caches.safetensors"])
        let caches = try SafeTensorsFile(path: dir + "/caches.safetensors")
        for name in ["vision_features", "projected", "voco_k", "voco_v"] {
            #expect(try caches.tensor(name).shape == Fixtures.expected().tensor(name).shape, "\(name)")
            #expect(maxAbsDifference(try caches.tensor(name).floats(), try Fixtures.floats(name)) <= 1e-4, "\(name)")
        }
        #expect(try caches.tensor("first_position").floats() == [19, 19, 19])

        try run(["debug", "query", "--model", model, "--caches", dir + "/caches.safetensors", "--images", "2,0,1",
                 "--tokens", "7,23,41,12,55", "--layout", "sequential", "--out", dir + "/logits.safetensors"])
        let logits = try SafeTensorsFile(path: dir + "/logits.safetensors").tensor("logits")
        #expect(logits.shape == [5, 64])
        #expect(maxAbsDifference(logits.floats(), try Fixtures.floats("query_logits_sequential3")) <= 1e-4)

        try "7 23 41\n12 55\n".write(toFile: dir + "/tokens.txt", atomically: true, encoding: .utf8)
        try run(["debug", "query", "--model", model, "--images", "none", "--tokens-file", dir + "/tokens.txt",
                 "--out", dir + "/text.safetensors"])
        #expect(maxAbsDifference(try SafeTensorsFile(path: dir + "/text.safetensors").tensor("logits").floats(),
                                 try Fixtures.floats("query_logits_text_only")) <= 1e-4)
    }

    @Test func fullModeFileHoldsEveryRow() throws {
        let dir = temporaryDirectory("debug-commands")
        var pixels = SafeTensorsWriter()
        try pixels.add("pixel_values", shape: [1, 3, 32, 32], floats: Fixtures.pixels(1))
        try pixels.write(to: dir + "/pixels.safetensors")
        try run(["debug", "compress", "--model", Fixtures.model(), "--pixels", dir + "/pixels.safetensors",
                 "--out", dir + "/full.safetensors", "--mode", "full"])
        let file = try SafeTensorsFile(path: dir + "/full.safetensors")
        #expect(file.metadata["mode"] == "full")
        #expect(try file.tensor("voco_k").shape == [1, 3, 19, 24])
        try run(["debug", "query", "--model", Fixtures.model(), "--caches", dir + "/full.safetensors",
                 "--tokens", "7,23,41,12,55", "--out", dir + "/logits.safetensors"])
        #expect(maxAbsDifference(try SafeTensorsFile(path: dir + "/logits.safetensors").tensor("logits").floats(),
                                 try Fixtures.floats("full_single_pass_logits")) <= 1e-4)
    }

    @Test func badArgumentsAreErrorsNotCrashes() throws {
        let dir = temporaryDirectory("debug-commands")
        var pixels = SafeTensorsWriter()
        try pixels.add("pixel_values", shape: [1, 3, 16, 16], floats: [Float](repeating: 0, count: 768))
        try pixels.write(to: dir + "/small.safetensors")
        #expect(throws: ModelError.self) {
            try run(["debug", "compress", "--model", Fixtures.model(), "--pixels", dir + "/small.safetensors", "--out", dir + "/x.safetensors"])
        }
        #expect(throws: (any Error).self) {
            try run(["debug", "query", "--model", Fixtures.model(), "--tokens", "1,x", "--out", dir + "/x.safetensors"])
        }
        #expect(throws: (any Error).self) {
            try run(["debug", "query", "--model", Fixtures.model(), "--out", dir + "/x.safetensors"])
        }
    }

    /// Sampling values that generation cannot use are refused when the arguments are parsed,
    /// naming the option, for `ask` and `debug generate` alike (they share SamplingOptions).
    @Test(arguments: [("--temperature", "-1"), ("--temperature", "nan"), ("--top-p", "0"), ("--top-p", "1.5"),
                      ("--max-tokens", "0")])
    func badSamplingValuesAreRefusedByName(option: String, value: String) throws {
        for command in [["ask", "Which image has a red circle?"],
                        ["debug", "generate", "--model", Fixtures.model(), "--tokens", "5,6"]] {
            do {
                _ = try VoCoCommand.parseAsRoot(command + ["\(option)=\(value)"])
                Issue.record("\(command.first!) \(option) \(value) was accepted")
            } catch {
                #expect(VoCoCommand.message(for: error).contains(option), "\(VoCoCommand.message(for: error))")
            }
        }
        _ = try VoCoCommand.parseAsRoot(["ask", "--temperature", "0.7", "--top-p", "0.9", "--max-tokens", "4", "q"])
    }
}
