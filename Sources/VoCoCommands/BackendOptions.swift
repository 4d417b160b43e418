import ArgumentParser
import Foundation
import VoCoCompute
import VoCoModel

// MARK: - Which kernels run the model

/// `--backend` and `--verbose`, for every command that loads a model.
struct BackendOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Compute backend: \(ComputeBackend.argumentNames).",
        discussion: "Default: $VOCO_BACKEND, else kernels at the best ISA level of this CPU ($VOCO_ISA caps it, e.g. avx2)."))
    var backend: ComputeBackend?

    @Flag(help: "Print which kernels run (backend, ISA level, threads) and how the weights are held, to standard error.")
    var verbose = false

    var loadOptions: LoadOptions { LoadOptions(backend: backend ?? .default) }

    /// With --verbose, one line about `engine`'s compute on standard error.
    func report(_ engine: VoCoEngine) {
        guard verbose else { return }
        let weights = engine.weightsWidened ? "half weights widened to F32 at load" : "weights mapped"
        FileHandle.standardError.write(Data("compute: \(engine.compute.summary); \(weights) (\(engine.directory))\n".utf8))
    }
}

extension ComputeBackend: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
}
