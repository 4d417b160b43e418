import Foundation
import Testing
import VoCoPipeline
import VoCoTestSupport

// MARK: - The walk: sorted, recursive, links followed, problems reported

@Suite struct FileWalkTests {
    @Test func filesAreSortedByPathBytesWhateverTheArgumentOrder() throws {
        let root = TestPaths.scratch("walk")
        for path in ["b/2.jpg", "b/10.jpg", "a.txt", "a/z.png", "B/x", "a b/c"] {
            let full = (root as NSString).appendingPathComponent(path)
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: full, contents: Data([1]))
        }
        let walk = FileWalk.collect([root + "/b", root + "/a.txt", root])  // overlapping arguments: each file once
        #expect(walk.problems.isEmpty)
        #expect(walk.files.map { String($0.dropFirst(root.count + 1)) } == ["B/x", "a b/c", "a.txt", "a/z.png", "b/10.jpg", "b/2.jpg"])
    }

    @Test func relativeArgumentsBecomeAbsolute() throws {
        let root = TestPaths.scratch("walk-relative")
        _ = FileManager.default.createFile(atPath: root + "/one.jpg", contents: Data([1]))
        let previous = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(root)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        #expect(FileWalk.collect(["./one.jpg"]).files == [FileWalk.absolute(root + "/one.jpg")])
        #expect(FileWalk.absolute("/a/./b/../c") == "/a/c")
    }

    @Test func linkLoopsBrokenLinksAndSpecialFilesAreReportedNotFatal() throws {
        let root = TestPaths.scratch("walk-links")
        try FileManager.default.createDirectory(atPath: root + "/d/e", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: root + "/d/e/f.jpg", contents: Data([1]))
        try FileManager.default.createSymbolicLink(atPath: root + "/d/e/up", withDestinationPath: "../..")  // a loop
        try FileManager.default.createSymbolicLink(atPath: root + "/d/gone", withDestinationPath: root + "/missing")
        try FileManager.default.createSymbolicLink(atPath: root + "/self", withDestinationPath: root + "/self")
        try FileManager.default.createSymbolicLink(atPath: root + "/zz-alias", withDestinationPath: root + "/d/e")  // the same folder again
        #expect(mkfifo(root + "/pipe", 0o600) == 0)
        let walk = FileWalk.collect([root])
        #expect(walk.files == [root + "/d/e/f.jpg"])
        let reasons = Dictionary(uniqueKeysWithValues: walk.problems.map { (String($0.path.dropFirst(root.count + 1)), $0) })
        #expect(reasons["d/e/up"]?.reason.contains("loop") == true)
        #expect(reasons["d/gone"]?.reason.contains("broken symbolic link") == true)
        #expect(reasons["self"]?.reason.contains("loop") == true)
        #expect(reasons["pipe"]?.reason.contains("FIFO") == true)
        #expect(reasons["zz-alias"]?.reason.contains("same folder as \(root)/d/e") == true)
        #expect(walk.problems.allSatisfy { !$0.isFailure })
    }

    @Test(.enabled(if: getuid() != 0, "root reads every folder, so none can be made unreadable"))
    func anUnreadableFolderIsAFailureAndTheWalkGoesOn() throws {
        let root = TestPaths.scratch("walk-unreadable")
        try FileManager.default.createDirectory(atPath: root + "/closed", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: root + "/open.jpg", contents: Data([1]))
        #expect(chmod(root + "/closed", 0) == 0)
        defer { chmod(root + "/closed", 0o700) }
        let walk = FileWalk.collect([root])
        #expect(walk.files == [root + "/open.jpg"])
        #expect(walk.problems.map(\.path) == [root + "/closed"])
        #expect(walk.problems.first?.isFailure == true)
    }

    @Test func aMissingArgumentIsAFailure() {
        let walk = FileWalk.collect(["/nonexistent-\(UUID().uuidString)"])
        #expect(walk.files.isEmpty)
        #expect(walk.problems.count == 1 && walk.problems[0].isFailure && walk.problems[0].reason.contains("No such file"))
    }
}
