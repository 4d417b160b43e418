import VoCoImage

/// One input: decode it as the product does (format from content, EXIF, limits), then run
/// both preprocessing modes at a small size so the resampler, pad and crop see every shape
/// the decoder can produce. Any crash, hang, leak or sanitizer report is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImageDecode(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    // 4 MP keeps each run fast and the process far from libFuzzer's memory limit.
    guard let decoded = try? ImageDecoder.decode(bytes, source: "fuzz", limits: ImageLimits(maximumPixels: 4_000_000)) else {
        return 0
    }
    var config = PreprocessorConfig()
    config.size = .shortestEdge(16)
    config.cropSize = (height: 16, width: 16)
    config.resample = size % 3 == 0 ? .lanczos : .bicubic
    for mode in [AspectRatioMode.pad, .crop] {
        var preprocessor = ImagePreprocessor(config: config, mode: mode)
        preprocessor.maximumResampleWork = 100_000_000  // under libFuzzer's timeout in a debug ASan build
        guard let tensor = try? preprocessor.tensor(decoded.image) else { continue }
        precondition(tensor.values.count == 3 * 16 * 16, "unexpected output shape \(tensor.height)x\(tensor.width)")
    }
    return 0
}
