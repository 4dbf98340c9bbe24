import Testing
@testable import GatewayHTTP

/// Header names are matched by their ASCII-lowercased form, and `Connection` decides persistence;
/// both run for every request, so they have fast paths that must agree with the plain definition.
@Suite struct HeaderCaseAndKeepAliveTests {
    @Test func optionalWhitespaceIsTrimmedByBytesAndOnlyAtTheEnds() {
        #expect(Substring(" \t key\t ").trimmingOptionalWhitespace() == "key")
        #expect(Substring("a b").trimmingOptionalWhitespace() == "a b")
        #expect(Substring(" \t ").trimmingOptionalWhitespace() == "")
        #expect(Substring("").trimmingOptionalWhitespace() == "")
        // A combining mark after a space makes one character with it; by bytes the space still goes
        // and the mark stays, never a character cut in half or a mark dropped with its base.
        #expect(Array(Substring("\u{301}x ").trimmingOptionalWhitespace().utf8) == Array("\u{301}x".utf8))
        #expect(Array(Substring(" \u{301}x").trimmingOptionalWhitespace().utf8) == Array("\u{301}x".utf8))
        #expect(Substring("\u{A0}x\u{A0}").trimmingOptionalWhitespace() == "\u{A0}x\u{A0}")
    }

    @Test(arguments: [
        "host", "Host", "CONTENT-LENGTH", "X-A-Rather-Long-Header-Name-Beyond-Fifteen-Bytes",
        "x-already-lowercase-and-long", "", "A", "Ünïcödé-Name", "MiXeD-123_~!",
    ])
    func lowercasesOnlyASCIILetters(name: String) {
        let expected = String(decoding: name.utf8.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self)
        #expect(asciiLowercased(name) == expected)
        #expect(HTTPHeaders.Field(name: name, value: "v").canonicalName == expected)
    }

    struct KeepAliveCase: Sendable, CustomTestStringConvertible {
        let version: HTTPVersion
        let connectionFields: [String]
        let keepsAlive: Bool
        var testDescription: String { "\(version) \(connectionFields)" }
    }

    @Test(arguments: [
        KeepAliveCase(version: .http1_1, connectionFields: [], keepsAlive: true),
        KeepAliveCase(version: .http1_1, connectionFields: ["close"], keepsAlive: false),
        KeepAliveCase(version: .http1_1, connectionFields: ["CLOSE"], keepsAlive: false),
        KeepAliveCase(version: .http1_1, connectionFields: ["keep-alive, close"], keepsAlive: false),
        KeepAliveCase(version: .http1_1, connectionFields: ["keep-alive", " Close "], keepsAlive: false),
        KeepAliveCase(version: .http1_1, connectionFields: ["upgrade"], keepsAlive: true),
        KeepAliveCase(version: .http1_1, connectionFields: ["closed"], keepsAlive: true),
        KeepAliveCase(version: .http1_0, connectionFields: [], keepsAlive: false),
        KeepAliveCase(version: .http1_0, connectionFields: ["Keep-Alive"], keepsAlive: true),
        KeepAliveCase(version: .http1_0, connectionFields: ["foo", "keep-alive"], keepsAlive: true),
        KeepAliveCase(version: .http1_0, connectionFields: ["keep-alive", "close"], keepsAlive: false),
        KeepAliveCase(version: .http1_0, connectionFields: [",, keep-alive ,"], keepsAlive: true),
        KeepAliveCase(version: .http1_0, connectionFields: ["keep-alives"], keepsAlive: false),
    ])
    func keepAliveFollowsVersionAndConnectionTokens(_ example: KeepAliveCase) {
        var headers = HTTPHeaders()
        headers.add(name: "X-Other", value: "close")
        for value in example.connectionFields { headers.add(name: "Connection", value: value) }
        let request = HTTPRequest(method: .get, target: "/", version: example.version, headers: headers)
        #expect(request.wantsKeepAlive == example.keepsAlive)
    }
}
