import Foundation

// MARK: - "image 3" in an answer -> the image placed third

enum ImageMentions {
    /// Every "image N" (any case) in `answer`, in order, resolved against `used` (placement order).
    static func resolve(_ answer: String, used: [UsedImage]) -> [ImageReference] {
        guard let pattern = try? NSRegularExpression(pattern: #"\bimage\s+#?([0-9]{1,9})\b"#, options: [.caseInsensitive]) else { return [] }
        let range = NSRange(answer.startIndex..., in: answer)
        return pattern.matches(in: answer, range: range).compactMap { match in
            guard let whole = Range(match.range, in: answer), let digits = Range(match.range(at: 1), in: answer),
                  let number = Int(answer[digits]) else { return nil }
            let image = (1...max(1, used.count)).contains(number) && number <= used.count ? used[number - 1] : nil
            return ImageReference(text: String(answer[whole]), number: number, digest: image?.digest, name: image?.name)
        }
    }
}
