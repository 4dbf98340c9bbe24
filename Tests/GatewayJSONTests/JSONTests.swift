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

    @Test(arguments: [0, 7, 9, 10, 99, 100, 1_000_000, -1, -10, Int.max, Int.min])
    func signedDecimalMatchesStringConversion(value: Int) {
        var writer = JSONWriter()
        writer.decimal(value)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == "\(value)")
    }

    @Test(arguments: [UInt64(0), 1, 9, 10, 19, 100, 12_345, 10_000_000_000_000_000_000, UInt64.max])
    func decimalWritesEveryDigit(value: UInt64) {
        var writer = JSONWriter()
        writer.decimal(value)
        writer.fragment(",")
        #expect(String(decoding: writer.bytes, as: UTF8.self) == "\(value),")
    }

    /// The escaping rule byte by byte, as the writer applied it before it scanned words.
    static func escapedByByte(_ text: String) -> String {
        var output = "\""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output += "\\\""
            case UInt8(ascii: "\\"): output += "\\\\"
            case 0x0A: output += "\\n"
            case 0x0D: output += "\\r"
            case 0x09: output += "\\t"
            case 0..<0x20, 0x7F: output += "\\u00" + String(byte, radix: 16).leftPadded(to: 2)
            default: output.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return output + "\""
    }

    @Test func everyAsciiByteAtEveryPositionOfAWordIsEscapedExactlyWhenItMust() {
        for length in [1, 8, 9, 17] {
            for position in 0..<length {
                for byte in UInt8(0)...0x7F {
                    var utf8 = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    utf8[position] = byte
                    let text = String(decoding: utf8, as: UTF8.self)
                    var writer = JSONWriter()
                    writer.string(text)
                    #expect(String(decoding: writer.bytes, as: UTF8.self) == Self.escapedByByte(text), "byte \(byte) at \(position) of \(length)")
                }
            }
        }
    }

    @Test func multiByteCharactersAndMixedEscapesRoundTrip() throws {
        let texts = ["é日本語🙂 plain", "\"quoted\" \\ back", String(repeating: "ab\u{1}cd\"efgh", count: 5), "x\u{7F}y\n"]
        for text in texts {
            var writer = JSONWriter()
            writer.string(text)
            #expect(try JSONParser.parse(writer.bytes) == .string(text))
        }
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
