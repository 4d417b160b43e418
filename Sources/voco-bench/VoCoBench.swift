import ArgumentParser

/// `voco-bench`: benchmarks that print figures, each with a baseline measured in the same run.
/// Speed is measured here, never in timed unit tests.
@main
struct VoCoBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "voco-bench",
        abstract: "Print speed and size figures for VoCo Store's parts (build with -c release).",
        subcommands: [
            ConvertBenchmark.self,
            EngineBenchmark.self,
            CheckpointCommand.self,
            ThreadsBenchmark.self,
            StoreBenchmark.self,
            CodecsBenchmark.self,
            RedisBenchmark.self,
            TokenizerBenchmark.self,
            ImageBenchmark.self,
            IngestBenchmark.self,
            HaystackBenchmark.self,
            CachedBenchmark.self,
            ServeBenchmark.self,
        ]
    )
}
