import ArgumentParser

/// The `voco` command tree, declared in one place.
public struct VoCoCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "voco",
        abstract: "Compress images once into VoCo KV caches and answer questions from them.",
        subcommands: [
            AskCommand.self,
            IngestCommand.self,
            IngestDaemonCommand.self,
            ServeCommand.self,
            EvaluateCommand.self,
            InspectCommand.self,
            StoreCommand.self,
            DebugCommand.self,
        ]
    )

    public init() {}
}
