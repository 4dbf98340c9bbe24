import GatewayJSON
import Testing

@Suite struct JSONTests {
    @Test func parsesEveryKindAndKeepsMemberOrder() throws {
        let value = try JSONParser.parse(#" {"z": 1, "a": [true, false, null], "n": -1.5e2, "s": "x\"\u00e9\ud83d\ude00\n", "big": 12345678901234567890} "#)
        let object = try #require(value.objectValue)
        #expect(object.keys == ["z", "a", "n", "s", "big"])
        #expect(value["z"] == .integer(1))
        #expect(value["a"] == [true, false, nil])
        #expect(value["n"] == .double(-150))
        #expect(value["s"]?.stringValue == "x\"é😀\n")
        #expect(value["big"]?.doubleValue == 1.2345678901234567e19)
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "-", "1e", "NaN", "tru", "\"\\x\"", "\"a\nb\"",
        "\"\\ud800\"", "\"\\udc00\"", "[1] 2", "{'a':1}", "{\"a\" 1}", "\u{FEFF}{}", "nul",
    ])
    func rejectsInvalidDocuments(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func rejectsInvalidUTF8AndDeepNesting() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
    }

    @Test func roundTripsThroughTheWriter() throws {
        let text = #"{"id":"ex_1","n":[1,2.5,-3],"u":"é\"\\\n\t\u0001","o":{},"e":[],"b":false,"x":null}"#
        let value = try JSONParser.parse(text)
        #expect(String(decoding: value.serialized(), as: UTF8.self) == text)
        #expect(try JSONParser.parse(value.serialized()) == value)
    }

    @Test func objectWriterSeparatesMembers() {
        var writer = JSONWriter()
        writer.object { members in
            members.member("a", .integer(1))
            members.member("b", string: nil)
            members.member("c", writing: { $0.write(["x"]) })
        }
        #expect(String(decoding: writer.bytes, as: UTF8.self) == #"{"a":1,"b":null,"c":["x"]}"#)
    }
}
