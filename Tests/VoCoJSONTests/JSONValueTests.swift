import Foundation
import Testing
import VoCoJSON

@Suite struct JSONValueTests {
    func parse(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    /// JSONSerialization on Linux gives `true` and `1` the same NSNumber; a config that says
    /// `"do_resize": 1` must not read as a boolean, nor `"size": true` as a number.
    @Test func booleansNumbersAndNullStayApart() throws {
        #expect(try parse("true") == .bool(true))
        #expect(try parse("false") == .bool(false))
        #expect(try parse("1") == .number(1))
        #expect(try parse("0") == .number(0))
        #expect(try parse("null") == .null)
        #expect(try parse(#""1""#) == .string("1"))
    }

    @Test func nestedValues() throws {
        let value = try parse(#"{"size": {"shortest_edge": 224}, "mean": [0.5, 0.25], "name": null}"#)
        #expect(value == .object(["size": .object(["shortest_edge": .number(224)]),
                                  "mean": .array([.number(0.5), .number(0.25)]), "name": .null]))
    }

    @Test func objectFromDataIsNilForAnythingButAnObject() throws {
        #expect(JSONValue.object(from: Data(#"{"a": 1}"#.utf8)) == ["a": .number(1)])
        #expect(JSONValue.object(from: Data("[1, 2]".utf8)) == nil)
        #expect(JSONValue.object(from: Data("3".utf8)) == nil)
        #expect(JSONValue.object(from: Data("{ not json".utf8)) == nil)
        #expect(JSONValue.object(from: Data()) == nil)
    }

    /// The text quoted in error messages: integers without ".0", keys sorted so the message is stable.
    @Test func descriptionQuotesTheValue() throws {
        #expect(try parse(#"{"type": "linear", "factor": 2}"#).description == #"{"factor": 2, "type": "linear"}"#)
        #expect(try parse("[1.5, true, null, \"x\"]").description == #"[1.5, true, null, "x"]"#)
        #expect(try parse("3").description == "3")
    }
}
