import Foundation

// MARK: - Checking config.json against itself once the vision tower is known

extension VoCoEngine {
    /// Refuses, at load and by field, a model whose compression pass could not run: its
    /// sequence (BOS, prefix, patches, k VoCo tokens) plus one text token must fit
    /// `max_position_embeddings`, and one image's working memory must fit this machine.
    /// (config.json alone is checked while it is decoded; this needs the tower's patch count,
    /// which may come from `mm_vision_tower`.)
    func checkPasses(configPath: String) throws {
        guard let vision, let (length, kept) = compressionLayout(mode: settings.mode) else { return }
        let c = text, context = c.maxPositionEmbeddings
        let prefix = settings.compressionPrefixIds.count, patches = vision.featureCount
        // The first question over one image needs the compression rows up to the kept ones, then text.
        guard kept.upperBound < context else {
            let field: String, value: Int
            switch settings.mode {
            case .voco: (field, value) = ("voco.num_tokens", settings.numTokens)
            case .full, .avgpool: (field, value) = ("max_position_embeddings", context)
            }
            let k = settings.mode == .voco ? " + \(settings.numTokens) VoCo tokens" : settings.mode == .avgpool ? " (pooled to 1 row)" : ""
            throw ModelError.invalidConfigValue(path: configPath, field: field, value: "\(value)",
                                                expected: "the \(settings.mode.rawValue) compression pass (BOS + \(prefix) prefix ids + \(patches) patches\(k)) and one text token to fit max_position_embeddings (\(context))")
        }
        let bytes = Self.compressionBytes(c, length: length, threads: compute.threads.count)
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        guard bytes <= physical else {
            throw ModelError.invalidConfigValue(path: configPath, field: settings.mode == .voco ? "voco.num_tokens" : "max_position_embeddings",
                                                value: settings.mode == .voco ? "\(settings.numTokens)" : "\(context)",
                                                expected: "a compression pass that fits memory: one image's \(length) rows need about \(bytes >> 20) MiB of working memory, this machine has \(physical >> 20) MiB")
        }
    }

    /// Working memory of one image's compression pass in bytes: activations of every row
    /// (`[length][hidden, q, k, v, attended, gate, up]`) and the attention scores of each
    /// worker (`[length][length]`), in F32; saturates instead of overflowing.
    static func compressionBytes(_ c: LlamaConfiguration, length: Int, threads: Int) -> Int {
        let widths = [c.hiddenSize, c.queryWidth, c.kvWidth, c.kvWidth, c.queryWidth, c.intermediateSize, c.intermediateSize]
        let perRow = widths.reduce(0, saturatingSum)
        let workers = max(1, min(threads, c.numAttentionHeads))
        return saturatingProduct(4, saturatingSum(saturatingProduct(length, perRow), saturatingProduct(length, length, workers)))
    }
}

// MARK: - Arithmetic that saturates instead of trapping

/// a * b * ..., or Int.max when that overflows: sizes from hostile input stay comparable.
public func saturatingProduct(_ factors: Int...) -> Int {
    factors.reduce(1) { p, f in
        let (r, overflow) = p.multipliedReportingOverflow(by: f)
        return overflow ? .max : r
    }
}

/// a + b, or Int.max when that overflows.
public func saturatingSum(_ a: Int, _ b: Int) -> Int {
    let (r, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : r
}
