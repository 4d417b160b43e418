import Foundation
import VoCoCompute

// MARK: - Vision features -> language model embeddings

/// LLaVA's multimodal projector: `linear` (one Linear) or `mlp2x_gelu` (Linear, exact GELU, Linear).
public final class Projector {
    enum Layers {
        case linear(WeightMatrix, bias: [Float])  // [hidden][mmHidden], [hidden]
        case mlp2xGELU(WeightMatrix, firstBias: [Float], WeightMatrix, secondBias: [Float])  // [hidden][mmHidden], [hidden][hidden]
    }

    public let inputWidth: Int
    public let outputWidth: Int
    let layers: Layers

    init(type: MultimodalConfiguration.ProjectorType, inputWidth: Int, outputWidth: Int, weights w: WeightLoader) {
        self.inputWidth = inputWidth
        self.outputWidth = outputWidth
        switch type {
        case .linear:
            layers = .linear(w.matrix("weight", rows: outputWidth, columns: inputWidth), bias: w.vector("bias", count: outputWidth))
        case .mlp2xGELU:
            layers = .mlp2xGELU(w.matrix("0.weight", rows: outputWidth, columns: inputWidth), firstBias: w.vector("0.bias", count: outputWidth),
                                w.matrix("2.weight", rows: outputWidth, columns: outputWidth), secondBias: w.vector("2.bias", count: outputWidth))
        }
    }

    /// `[rows][inputWidth]` features in, `[rows][outputWidth]` embeddings out (one GEMM per layer).
    public func project(_ features: UnsafePointer<Float>, rows: Int, into output: UnsafeMutablePointer<Float>,
                        compute: ComputeContext) {
        switch layers {
        case let .linear(weight, bias):
            compute.linear(features, rows: rows, weight, bias: bias, into: output)
        case let .mlp2xGELU(first, firstBias, second, secondBias):
            let hidden = UnsafeMutablePointer<Float>.allocate(capacity: max(1, rows * outputWidth))  // [rows][hidden]
            defer { hidden.deallocate() }
            compute.linear(features, rows: rows, first, bias: firstBias, into: hidden)
            Kernels.gelu(hidden, count: rows * outputWidth)
            compute.linear(hidden, rows: rows, second, bias: secondBias, into: output)
        }
    }
}
