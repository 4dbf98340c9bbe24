import GatewayJSON
import GatewayTestSupport
import Testing

/// The streaming reader hands out exactly the elements `JSONParser` finds in the same document,
/// whatever the chunking, and refuses what it refuses.
@Suite struct JSONArrayStreamTests {
    static let document = Array(#"""
        {"total": 7, "executions": [{"id":"a\"]}","n":[1,{"x":"}{"}]}, 12 ,-3.5e2,"s\\","\ud83d\ude00é",true,null,[],{},
        [[["deep"]]]], "next" : null }
        """#.utf8)

    /// What the whole-document parser finds: the array's elements and the other members; nil where
    /// the stream must refuse.
    static func expected(_ bytes: [UInt8], member: String = "executions") -> (elements: [JSONValue], others: JSONObject)? {
        guard let document = try? JSONParser.parse(bytes), let object = document.objectValue else { return nil }
        let arrays = object.members.filter { $0.key == member }
        guard arrays.count == 1, let elements = arrays[0].value.arrayValue else { return nil }
        return (elements, JSONObject(object.members.filter { $0.key != member }))
    }

    static func stream(_ chunks: [ArraySlice<UInt8>], maxElementBytes: Int = 1 << 20) throws(JSONStreamError) -> (elements: [JSONValue], others: JSONObject) {
        var reader = JSONArrayStream(arrayAt: .member("executions"), maxElementBytes: maxElementBytes)
        var elements: [JSONValue] = []
        for chunk in chunks { elements += try reader.feed(chunk) }
        try reader.finish()
        return (elements, reader.otherMembers)
    }

    @Test func everySplitIntoTwoChunksGivesTheParsersElements() throws {
        let expected = try #require(Self.expected(Self.document))
        #expect(expected.elements.count == 10)
        for split in 0...Self.document.count {
            let result = try Self.stream([Self.document[..<split], Self.document[split...]])
            #expect(result.elements == expected.elements, "split at \(split)")
            #expect(result.others == expected.others, "split at \(split)")
        }
    }

    @Test func byteAtATimeGivesTheParsersElements() throws {
        let expected = try #require(Self.expected(Self.document))
        let result = try Self.stream(Self.document.indices.map { Self.document[$0...$0] })
        #expect(result.elements == expected.elements && result.others == expected.others)
    }

    @Test func elementsAreHandedOutAsSoonAsTheyComplete() throws {
        var reader = JSONArrayStream(arrayAt: .member("items"), maxElementBytes: 64)
        #expect(try reader.feed(Array(#"{"items":[{"a":1},{"b""#.utf8)) == [["a": 1]])
        #expect(try reader.feed(Array(#":2}"#.utf8)) == [["b": 2]])
        #expect(try reader.feed(Array("]}".utf8)).isEmpty)
        try reader.finish()
        #expect(reader.elementCount == 2 && reader.isComplete)
    }

    @Test func aRootArrayIsReadToo() throws {
        var reader = JSONArrayStream(arrayAt: .root, maxElementBytes: 64)
        let elements = try reader.feed(Array(#" [1, "two", [3]] "#.utf8))
        try reader.finish()
        #expect(elements == [1, "two", [3]])
    }

    @Test func everyTruncationIsAnErrorNeverAShorterList() {
        for end in 0..<Self.document.count where !Self.document[end...].allSatisfy({ $0 == 0x20 || $0 == 0x0A }) {
            #expect(throws: JSONStreamError.self, "truncated at \(end)") {
                _ = try Self.stream([Self.document[..<end]])
            }
        }
    }

    @Test(arguments: [
        #"{"executions":[1,]}"#, #"{"executions":[1],}"#, #"{"executions" [1]}"#, #"{"executions":{}}"#,
        #"{"executions":[1],"executions":[2]}"#, #"{"executions":[1]} x"#, #"{"executions":[1 2]}"#,
        #"{"executions":[1x]}"#, #"{"executions":["a"x]}"#, #"{"executions":[tru]}"#, #"[1]"#, #"{"other":1}"#,
        #"{"executions":["\u12"]}"#, "{\"executions\":[\"tab\tinside\"]}", #"{"executions":[{"a":1,}]}"#, "", "   ",
        #"{,"executions":[]}"#, #"{"total":01,"executions":[]}"#,
    ])
    func malformedDocumentsAreRefused(_ text: String) {
        #expect(throws: JSONStreamError.self) { _ = try Self.stream([Array(text.utf8)[...]]) }
    }

    @Test func anElementOverTheLimitIsRefusedAfterTheOnesBeforeIt() throws {
        var reader = JSONArrayStream(arrayAt: .member("executions"), maxElementBytes: 16)
        let small = try reader.feed(Array(#"{"executions":["0123456789",""#.utf8))
        #expect(small == ["0123456789"])
        let error = #expect(throws: JSONStreamError.self) {
            _ = try reader.feed(Array(#"01234567890123456789"]}"#.utf8))
        }
        #expect(error?.reason.contains("larger than 16 bytes") == true)
    }

    @Test func errorsPointAtTheOffendingByteOfTheDocument() {
        let text = Array(#"{"executions":[1,{"a":tx}]}"#.utf8)
        let error = #expect(throws: JSONStreamError.self) { _ = try Self.stream([text[...]]) }
        #expect(error?.offset == 22, "the 't' of the bad literal")
    }

    /// Random documents and random mutations of them, in random chunks: the stream agrees with the
    /// whole-document parser on every one.
    @Test func agreesWithTheParserOnRandomAndMutatedDocuments() throws {
        var random = SplitMix64(seed: 2026)
        for round in 0..<3_000 {
            var bytes = Array(Self.randomDocument(&random).utf8)
            let mutations = round % 3 == 0 ? 0 : Int.random(in: 1...3, using: &random)
            for _ in 0..<mutations where !bytes.isEmpty {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes.remove(at: index)
                case 1: bytes.insert(Self.interestingBytes.randomElement(using: &random) ?? 0x20, at: index)
                default: bytes[index] = Self.interestingBytes.randomElement(using: &random) ?? 0x20
                }
            }
            var chunks: [ArraySlice<UInt8>] = []
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + Int.random(in: 1...40, using: &random))
                chunks.append(bytes[start..<end])
                start = end
            }
            let expected = Self.expected(bytes)
            let streamed = try? Self.stream(chunks)
            #expect(streamed?.elements == expected?.elements, "round \(round): \(String(decoding: bytes, as: UTF8.self))")
            #expect(streamed?.others == expected?.others, "round \(round)")
        }
    }

    static let interestingBytes: [UInt8] = Array(#"{}[],:"\ 0123456789-.eEtrufalsn"#.utf8) + [0x0A, 0x09, 0x00, 0xC3, 0xA9]

    static func randomDocument(_ random: inout SplitMix64) -> String {
        let elements = (0..<Int.random(in: 0...6, using: &random)).map { _ in randomValue(&random, depth: 0) }
        var members = ["\"executions\": [\(elements.joined(separator: ","))]"]
        if Bool.random(using: &random) { members.insert("\"total\": \(elements.count)", at: 0) }
        if Bool.random(using: &random) { members.append("\"meta\": \(randomValue(&random, depth: 1))") }
        return "{" + members.joined(separator: ", ") + "}"
    }

    static func randomValue(_ random: inout SplitMix64, depth: Int) -> String {
        switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &random) {
        case 0: return String(Int.random(in: -1_000...1_000, using: &random))
        case 1: return ["\"plain\"", "\"esc\\\"aped\\\\\"", "\"]}\"", "\"\\u00e9\"", "\"\""].randomElement(using: &random) ?? "\"\""
        case 2: return ["true", "false", "null"].randomElement(using: &random) ?? "null"
        case 3: return "1.5e3"
        case 4: return "\"x\""
        case 5: return "[" + (0..<Int.random(in: 0...3, using: &random)).map { _ in randomValue(&random, depth: depth + 1) }.joined(separator: ",") + "]"
        default:
            return "{" + (0..<Int.random(in: 0...3, using: &random)).map { index in
                "\"k\(index)\": " + randomValue(&random, depth: depth + 1)
            }.joined(separator: ",") + "}"
        }
    }
}
