import ArgumentParser

/// `voco debug ...`: low-level commands that expose one stage at a time (tensors in, tensors out).
/// They are a contract: checks against reference implementations run through them.
struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Run one stage of the pipeline on tensors or ids, for checking against a reference.",
        subcommands: [
            TensorsCommand.self,
            CompressCommand.self,
            QueryCommand.self,
            GenerateCommand.self,
            StoreFillCommand.self,
            EncodeCommand.self,
            DecodeCommand.self,
            PreprocessImageCommand.self,
        ]
    )
}
