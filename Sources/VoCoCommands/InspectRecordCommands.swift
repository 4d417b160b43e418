import ArgumentParser
import Foundation
import VoCoStore

/// `voco inspect show IMAGE`: one record's header and per-layer value statistics.
struct InspectShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one record: its header and per-layer statistics of K and V."
    )

    @OptionGroup var location: StoreLocation
    @OptionGroup var selection: RecordSelection
    @Flag(help: "Print JSON.") var json = false

    struct Shown: Encodable {
        var key: String
        var header: RecordHeader
        var storedBytes: Int
        var rawBytes: Int
        var image: ImageInfo?
        var layers: [LayerStatistics]
    }

    func run() throws {
        let store = try location.open()
        let key = try selection.resolve(in: store)
        let shown = try store.read { txn -> Shown? in
            guard let (header, kv, stored) = try txn.record(key) else { return nil }
            return Shown(key: key.description, header: header, storedBytes: stored, rawBytes: header.rawLength,
                         image: try txn.image(key.image), layers: kv.layerStatistics())
        }
        guard let shown else { throw CommandFailure("\(store.location): record \(key) disappeared while reading; try again") }
        if json { return try printJSON(shown) }
        let h = shown.header
        print("record \(shown.key)")
        print(table([
            ["model", h.model.hex], ["image", h.image.hex],
            ["codec", h.codec.name + (h.groupSize > 0 ? " (groups of \(h.groupSize))" : "")
                + (h.codec == .hq ? " (K \(h.keyBits) bits, V \(h.valueBits) bits)" : "") + (h.format == 1 ? "" : ", record format \(h.format)")], ["dtype", h.dtype.name],
            ["shape", "\(h.layers) layers x \(h.tokens) tokens x \(h.kvHeads) kv heads x \(h.headDim)"],
            ["positions", "\(h.firstPosition)..<\(h.firstPosition + h.tokens) in the compression pass"],
            ["K", h.keysBeforeRoPE ? "before RoPE" : "after RoPE"],
            ["size", "\(byteCount(shown.storedBytes)) stored, \(byteCount(shown.rawBytes)) raw (\(String(format: "%.2fx", Double(shown.rawBytes) / Double(shown.storedBytes))))"],
            ["source", shown.image.map { "\($0.sourceNames.joined(separator: ", ")) (\($0.format) \($0.width)x\($0.height))" } ?? "-"],
        ]))
        print("")
        func cells(_ s: ValueStatistics) -> [String] { [s.min, s.max, s.mean, s.std].map { String(format: "%.4g", $0) } }
        var rows = [["layer", "K min", "K max", "K mean", "K std", "V min", "V max", "V mean", "V std"]]
        for layer in shown.layers { rows.append(["\(layer.layer)"] + cells(layer.key) + cells(layer.value)) }
        print(table(rows))
    }
}

/// `voco inspect verify`: every record and entry checked; non-zero exit on any failure.
struct InspectVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every record's checksum and header against its model, and every entry; exit 1 on any failure."
    )

    @OptionGroup var location: StoreLocation
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try location.open()
        let report = try store.verify()
        if json {
            try printJSON(report)
        } else if report.failures.isEmpty {
            print("\(store.location): \(report.recordsChecked) records and \(report.entriesChecked) entries verified, no failures")
        } else {
            print("\(store.location): \(report.failures.count) failure(s) in \(report.recordsChecked) records and \(report.entriesChecked) entries:")
            for f in report.failures { print("  \(f.database) \(f.key): \(f.reason)") }
            print("Delete or re-ingest the records listed (they are never served), or restore the store from a backup.")
        }
        if !report.failures.isEmpty { throw ExitCode(1) }
    }
}

/// `voco inspect export IMAGE --output FILE`: one record as safetensors.
struct InspectExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write one record as safetensors: layers.N.key and layers.N.value, [tokens, kvHeads, headDim]."
    )

    @OptionGroup var location: StoreLocation
    @OptionGroup var selection: RecordSelection
    @Option(name: .shortAndLong, help: "The .safetensors file to write.") var output: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try location.open()
        let key = try selection.resolve(in: store)
        guard let (header, kv, _) = try store.read({ try $0.record(key) }) else {
            throw CommandFailure("\(store.location): record \(key) disappeared while reading; try again")
        }
        try RecordExport.safetensors(kv, header: header).write(to: output)
        let dtype = header.codec.isLossless ? header.dtype.name : "F32"
        if json { return try printJSON(["output": output, "record": key.description, "dtype": dtype, "layers": "\(header.layers)"]) }
        print("wrote \(output): \(header.layers) layers of K and V [\(header.tokens), \(header.kvHeads), \(header.headDim)] \(dtype)")
    }
}
