import Foundation
import Testing
@testable import VoCoStoreLMDB

/// The read transactions' memo of decoded image entries: keyed by the exact text, bounded in bytes.
@Suite struct DecodedJSONMemoTests {
    @Test func keepsValuesByTextWithinItsBound() {
        let memo = DecodedJSONMemo<Int>(capacityBytes: 160)
        let a = Data(repeating: 1, count: 10), b = Data(repeating: 2, count: 10)
        memo.insert(1, for: a)
        #expect(memo.value(for: a) == 1 && memo.value(for: b) == nil)
        // An entry over a sixteenth of the bound is never kept.
        let big = Data(repeating: 3, count: 11)
        memo.insert(3, for: big)
        #expect(memo.value(for: big) == nil)
        // Filling past the bound drops what was held; the newest entry stays.
        for n in 0..<16 { memo.insert(100 + n, for: Data([UInt8(n)] + [UInt8](repeating: 9, count: 9))) }
        #expect(memo.value(for: a) == nil)
        #expect(memo.value(for: Data([15] + [UInt8](repeating: 9, count: 9))) == 115)
    }
}
