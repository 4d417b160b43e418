/// The image formats we decode, told apart by their first bytes.
public enum ImageFormat: String, Sendable, Equatable {
    case jpeg = "JPEG"
    case png = "PNG"

    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

    /// JPEG: SOI followed by a marker (FF D8 FF); PNG: the 8-byte signature.
    public static func detect(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        if bytes.count >= 3, bytes[0] == 0xff, bytes[1] == 0xd8, bytes[2] == 0xff { return .jpeg }
        if bytes.count >= 8, pngSignature.indices.allSatisfy({ bytes[$0] == pngSignature[$0] }) { return .png }
        return nil
    }
}
