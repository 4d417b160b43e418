import Foundation

// MARK: - Salvage: what still verifies, into a new store

/// What `salvage` copied and what it could not.
public struct SalvageReport: Codable, Equatable, Sendable {
    /// One entry left behind, and why.
    public struct Loss: Codable, Equatable, Sendable {
        public var kind: String
        public var key: String
        public var reason: String
    }

    public var models = 0
    public var images = 0
    public var records = 0
    public var memberships = 0
    public var collections = 0
    /// Jobs still to do (queued, or running when the store was damaged), queued again.
    public var jobs = 0
    public var lost: [Loss] = []
    /// Damage in the source's structure: what lay behind a damaged page is lost without a name.
    public var damage: [VerifyFailure] = []
    /// Whether the new store passes `verify`.
    public var destinationVerifies = false
}

extension CacheStore {
    /// Copies into `destination` (a new, empty store) every model descriptor that parses, every
    /// image entry that parses, every record that verifies (checksum, header against key and
    /// model), every collection membership whose image kept both its entry and a record (in
    /// the collection's order), and every job not yet done. Reads one snapshot of this store;
    /// open it so that damage is skipped rather than refused (LMDB: `.forensic` reads).
    /// Records are written in batches of at most `batchBytes`.
    public func salvage(into destination: CacheStore, batchBytes: Int = 64 << 20) throws -> SalvageReport {
        var report = SalvageReport()
        report.damage = (try? backend.checkStructure()) ?? []
        func lose(_ kind: String, _ key: String, _ reason: String) { report.lost.append(.init(kind: kind, key: key, reason: reason)) }
        try read { txn in
            // Models, then images: what records and memberships are checked against.
            var models = Set<Digest>()
            try txn.readTransaction.scanCatalog(.models) { k, v in
                guard k.first == 1 else { return true }  // the weight-hash cache is rebuilt when needed
                guard let descriptor = try? JSONDecoder().decode(ModelDescriptor.self, from: Data(v)), descriptor.problem() == nil,
                      k.count == 33, descriptor.fingerprint.bytes.elementsEqual(k[1...]) else {
                    lose("model", Digest.hexString(k), "not a valid model descriptor")
                    return true
                }
                try destination.register(descriptor)
                models.insert(descriptor.fingerprint)
                return true
            }
            var images = Set<Digest>()
            var pending: [(Digest, ImageInfo)] = []
            try txn.readTransaction.scanCatalog(.images) { k, v in
                guard let digest = Digest(k), let info = try? JSONDecoder().decode(ImageInfo.self, from: Data(v)) else {
                    lose("image", Digest.hexString(k), "not a valid image entry")
                    return true
                }
                pending.append((digest, info))
                images.insert(digest)
                return true
            }
            try destination.write { w in for (digest, info) in pending { try w.transaction.putImage(digest, info) } }
            report.models = models.count
            report.images = images.count

            // Records that verify, in batches.
            var recordImages = Set<Digest>()
            var batch: [EncodedRecord] = [], batchSize = 0
            func flush() throws {
                guard !batch.isEmpty else { return }
                try destination.write { w in for record in batch { try w.put(record) } }
                report.records += batch.count
                (batch, batchSize) = ([], 0)
            }
            try txn.readTransaction.scanRecords(model: nil) { k, v in
                guard let key = RecordKey(k) else {
                    lose("record", Digest.hexString(k), "the key is not model + image + codec")
                    return true
                }
                do { _ = try txn.decodeChecked(v, key: key) } catch {
                    let reason = (error as? StoreError).flatMap { if case let .corruptRecord(_, _, _, r) = $0 { return r } else { return nil } } ?? "\(error)"
                    lose("record", key.description, reason)
                    return true
                }
                guard images.contains(key.image) || key.isReference else {  // a model's reference has no image entry
                    lose("record", key.description, "its image's entry was lost; ingest the image again")
                    return true
                }
                batch.append(EncodedRecord(key: key, bytes: Array(v)))
                batchSize = batchSize.addingSaturating(v.count)
                recordImages.insert(key.image)
                if batchSize >= batchBytes { try flush() }
                return true
            }
            try flush()

            // Memberships whose image kept its entry and a record, in each collection's order.
            var members: [String: [(ordinal: UInt64, image: Digest)]] = [:]
            try txn.readTransaction.scanCatalog(.collections) { k, v in
                guard k.count >= 10, k[k.count - 9] == 0, let image = Digest(v),
                      let name = String(bytes: k[0..<(k.count - 9)], encoding: .utf8), (try? CollectionName.validate(name)) != nil else {
                    lose("membership", Digest.hexString(k), "not collection name + ordinal -> image digest")
                    return true
                }
                let ordinal = readBigEndian(UnsafeRawBufferPointer(rebasing: k[(k.count - 8)...]))
                guard images.contains(image), recordImages.contains(image) else {
                    lose("membership", "\(name)/\(ordinal)", "image \(image.hex) lost its \(images.contains(image) ? "record" : "entry"); ingest it again")
                    return true
                }
                members[name, default: []].append((ordinal, image))
                return true
            }
            for (name, list) in members.sorted(by: { $0.key < $1.key }) {
                let images = list.sorted { $0.ordinal < $1.ordinal }.map(\.image)
                try destination.write { try $0.append(images, to: name) }
                report.memberships += images.count
            }
            report.collections = members.count
        }

        // Jobs not yet done, queued again (done and failed ones are history).
        let jobs = (try? self.jobs.jobs(collection: nil, after: nil, limit: .max)) ?? []
        let open = jobs.map(\.job).filter { $0.state == .queued || $0.state == .running }
        if !open.isEmpty { try destination.jobs.enqueue(open) }
        report.jobs = open.count
        report.destinationVerifies = (try? destination.verify().failures.isEmpty) ?? false
        return report
    }
}
