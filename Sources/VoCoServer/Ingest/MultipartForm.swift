import Foundation

// MARK: - multipart/form-data (RFC 7578), enough for one uploaded file

/// The parts of a `multipart/form-data` body that has been read whole (its size is bounded by
/// the server's body limit).
struct MultipartForm {
    struct Part {
        var name: String?
        var filename: String?
        var contentType: String?
        var body: ArraySlice<UInt8>
    }

    let parts: [Part]

    /// The boundary of a `multipart/form-data` content type, or nil for any other type.
    static func boundary(contentType: String) -> String? {
        let pieces = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard pieces.first?.lowercased() == "multipart/form-data" else { return nil }
        for piece in pieces.dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, pair[0].lowercased() == "boundary" else { continue }
            let value = pair[1].hasPrefix("\"") && pair[1].hasSuffix("\"") && pair[1].count >= 2 ? String(pair[1].dropFirst().dropLast()) : pair[1]
            return value.isEmpty || value.utf8.count > 70 ? nil : value
        }
        return nil
    }

    /// Parses `body`; throws a description of the first thing that does not follow the format.
    init(body: [UInt8], boundary: String) throws {
        let delimiter = Array("--\(boundary)".utf8)
        guard var position = Self.find(delimiter, in: body, from: 0) else { throw MultipartError("no opening boundary") }
        var parts: [Part] = []
        while true {
            position += delimiter.count
            if body[position...].starts(with: Array("--".utf8)) { break }  // the closing delimiter
            guard body[position...].starts(with: [13, 10]) else { throw MultipartError("a boundary is not followed by CRLF") }
            position += 2
            guard let headerEnd = Self.find([13, 10, 13, 10], in: body, from: position) else { throw MultipartError("a part has no end of headers") }
            let headers = String(decoding: body[position..<headerEnd], as: UTF8.self)
            let contentStart = headerEnd + 4
            guard let next = Self.find([13, 10] + delimiter, in: body, from: contentStart) else { throw MultipartError("a part has no closing boundary") }
            var part = Part(body: body[contentStart..<next])
            for line in headers.components(separatedBy: "\r\n") {
                let pair = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard pair.count == 2 else { continue }
                switch pair[0].lowercased() {
                case "content-disposition":
                    part.name = Self.parameter("name", in: pair[1])
                    part.filename = Self.parameter("filename", in: pair[1])
                case "content-type":
                    part.contentType = pair[1]
                default: break
                }
            }
            parts.append(part)
            position = next + 2
        }
        self.parts = parts
    }

    /// The part named `file`, else the first part with a file name, else the only part.
    var file: Part? {
        parts.first { $0.name == "file" } ?? parts.first { $0.filename != nil } ?? (parts.count == 1 ? parts[0] : nil)
    }

    // MARK: Helpers

    static func parameter(_ key: String, in header: String) -> String? {
        for piece in header.split(separator: ";").dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, pair[0].lowercased() == key else { continue }
            var value = pair[1]
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value
        }
        return nil
    }

    /// The first index of `needle` in `haystack` at or after `start`.
    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        let first = needle[0]
        var i = start
        while i <= haystack.count - needle.count {
            if haystack[i] == first, haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

struct MultipartError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = "multipart/form-data body: \(description)" }
}
