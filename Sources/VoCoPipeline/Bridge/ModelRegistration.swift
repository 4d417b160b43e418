import Foundation
import VoCoModel
import VoCoStore

// MARK: - A model meets a store

extension AnsweringModel {
    /// Registers this model in `store` before its records are written, and returns its
    /// descriptor: the one call ingest and query make; registering again changes nothing.
    /// A store whose codec is relative to a model reference (`hq:...,ref`) needs nothing more
    /// here: it makes the model's reference itself from the model's first records
    /// (StoreReferences.swift), so every path that writes records gets the same one.
    @discardableResult
    public func register(in store: CacheStore, fingerprint: ModelFingerprint) throws -> ModelDescriptor {
        let descriptor = try descriptor(fingerprint: fingerprint)
        try store.register(descriptor)
        return descriptor
    }
}
