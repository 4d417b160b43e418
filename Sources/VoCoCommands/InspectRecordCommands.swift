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
        abstract: "Check every page, record and entry of a store and how they fit together; exit 1 on any failure.",
        discussion: """
        Reads the store with VoCo Store's own page reader: a damaged page is reported, never a crash. Checks every \
        page of every B-tree and the free list, every record's checksum and header against its model, every entry's \
        checksum, and that memberships, records, image entries and indexes agree.
        """
    )

    @OptionGroup var location: StoreLocation
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try location.openForensic()
        let report = try store.verify()
        if json {
            try printJSON(report)
        } else if report.failures.isEmpty {
            print("\(store.location): \(report.recordsChecked) records and \(report.entriesChecked) entries verified, no failures")
        } else {
            print("\(store.location): \(report.failures.count) failure(s) in \(report.recordsChecked) records and \(report.entriesChecked) entries:")
            for f in report.failures { print("  \(f.database) \(f.key): \(f.reason)") }
            print("Damaged records are never served: delete one with `voco inspect rm-record IMAGE --model MODEL` and ingest its image again.")
            print("Damage to the store's structure: `voco inspect salvage --store \(store.location) --to NEW` copies everything that verifies into a new store.")
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
        try Self.checkOutput(output)
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

    /// The output must be a file path whose directory exists (checked before any work).
    static func checkOutput(_ output: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory), isDirectory.boolValue {
            throw CommandFailure("\(output) is a directory; give the path of the .safetensors file to write (for example \((output as NSString).appendingPathComponent("record.safetensors")))")
        }
        let parent = (output as NSString).deletingLastPathComponent
        if !parent.isEmpty, !(FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) && isDirectory.boolValue) {
            throw CommandFailure("\(output): the directory \(parent) does not exist")
        }
    }
}
