import Foundation
import SafeTensors

// MARK: - Compression results as safetensors (the `voco debug compress` / `query` contract)

/// The file the compression debug command writes and the query debug command reads:
/// `vision_features` [N,P,mm_hidden], `projected` [N,P,hidden], `voco_k` and `voco_v`
/// [N,layers,P',kvHeads*headDim] (K before RoPE), `first_position` [N] (I64), and the mode in
/// the metadata. `first_position` and the mode are optional when reading (a reference file may
/// lack them): they then come from the model's settings.
public enum CompressionFile {
    public static func write(_ result: CompressionResult, engine: VoCoEngine, to path: String) throws {
        let n = result.caches.count
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "mode": result.caches.first?.mode.rawValue ?? engine.settings.mode.rawValue])
        let features = engine.vision?.featureCount ?? 0
        let mm = engine.configuration.multimodal?.mmHiddenSize ?? 0
        try writer.add("vision_features", shape: [n, features, mm], floats: result.features)
        try writer.add("projected", shape: [n, features, engine.text.hiddenSize], floats: result.projected)
        if let first = result.caches.first {
            let shape = [n, first.layers, first.rows, first.width]
            try writer.add("voco_k", shape: shape, floats: result.caches.flatMap(\.keys))
            try writer.add("voco_v", shape: shape, floats: result.caches.flatMap(\.values))
        }
        try writer.add("first_position", shape: [n], int64s: result.caches.map { Int64($0.firstPosition) })
        try writer.write(to: path)
    }

    /// The caches in `path`, in the order of `images` (indices into the file; `nil` = all).
    public static func readCaches(path: String, engine: VoCoEngine, images: [Int]? = nil) throws -> [VoCoCache] {
        let file = try SafeTensorsFile(path: path)
        let keys = try file.tensor("voco_k"), values = try file.tensor("voco_v")
        let c = engine.text
        guard keys.shape.count == 4, keys.shape[1] == c.numHiddenLayers, keys.shape[3] == c.kvWidth else {
            throw SafeTensorsError.shapeMismatch(tensor: "voco_k", source: path,
                                                 expected: [keys.shape.first ?? 0, c.numHiddenLayers, keys.shape.count > 2 ? keys.shape[2] : 0, c.kvWidth],
                                                 actual: keys.shape)
        }
        guard values.shape == keys.shape else {
            throw SafeTensorsError.shapeMismatch(tensor: "voco_v", source: path, expected: keys.shape, actual: values.shape)
        }
        let count = keys.shape[0], rows = keys.shape[2]
        let mode = file.metadata["mode"].flatMap(VoCoMode.init(rawValue:)) ?? engine.settings.mode
        var firstPositions: [Int]
        if let positions = file["first_position"] {
            guard positions.shape == [count] else {
                throw SafeTensorsError.shapeMismatch(tensor: "first_position", source: path, expected: [count], actual: positions.shape)
            }
            firstPositions = try positions.floats().map { p in
                // A hostile file's NaN or 1e30 must not trap in Int(_:).
                guard p.isFinite, p >= 0, p < Float(Int32.max) else {
                    throw ModelError.invalidArgument("\(path): first_position \(p) is not a position (0 ..< 2^31)")
                }
                return Int(p)
            }
        } else {
            guard let layout = engine.compressionLayout(mode: mode) else { throw ModelError.noVisionTower(path: engine.directory) }
            firstPositions = Array(repeating: layout.kept.lowerBound, count: count)
        }
        let allKeys = keys.floats(), allValues = values.floats()
        let per = c.numHiddenLayers * rows * c.kvWidth
        return try (images ?? Array(0..<count)).map { i in
            guard (0..<count).contains(i) else {
                throw ModelError.invalidArgument("\(path): image \(i) requested but the file holds \(count) (0 ..< \(count))")
            }
            return try VoCoCache(mode: mode, layers: c.numHiddenLayers, rows: rows, width: c.kvWidth, firstPosition: firstPositions[i],
                                 keys: Array(allKeys[(i * per)..<((i + 1) * per)]), values: Array(allValues[(i * per)..<((i + 1) * per)]))
        }
    }
}
