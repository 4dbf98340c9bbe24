import GatewayHTTP
import GatewayServer
import GatewayTestSupport
import Testing

/// The bytes the server puts on the wire: heads exactly as encoded, responses in order however the
/// requests arrived, and output that the socket could not take at once delivered later, whole.
@Suite struct ResponseWritingTests {
    /// Answers with whatever the test put in `responses[path]`.
    struct FixedResponder: HTTPResponder {
        let responses: [String: HTTPResponse]
        func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
            responses[request.path] ?? HTTPResponse(status: .notFound)
        }
    }

    /// The head as sent, with the Date value (which changes every second) replaced by `<date>`.
    static func headWithoutDate(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        let head = text.components(separatedBy: "\r\n\r\n").first ?? ""
        return head.split(separator: "\r\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("Date: ") ? "Date: <date>" : String(line)
        }.joined(separator: "\r\n")
    }

    static func exchange(_ responder: FixedResponder, _ request: String, injectsTransportFaults: Bool = false) async throws -> [UInt8] {
        try await withServer(.forTests(injectsTransportFaults: injectsTransportFaults), responder: responder) { server in
            let client = try RawClient(port: server.localPort)
            try await client.send(request)
            return await client.readUntilClose().bytes
        }
    }

    @Test func framingFieldsFromTheResponderAreReplacedAndUnsafeFieldsDropped() async throws {
        let response = HTTPResponse(status: .ok, headers: [
            "X-First": "1",
            "Content-Length": "999",
            "transfer-encoding": "chunked",
            "Connection": "keep-alive",
            "DATE": "yesterday",
            "Keep-Alive": "timeout=5",
            "X-Split": "a\r\nInjected: yes",
            "Bad Name": "v",
            "X-Nul": "a\u{0}b",
            "X-Tab": "a\tb",
            "X-A-Rather-Long-Header-Name": "kept",
        ], text: "hello")
        let bytes = try await Self.exchange(
            FixedResponder(responses: ["/": response]),
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        #expect(Self.headWithoutDate(bytes) == [
            "HTTP/1.1 200 OK",
            "X-First: 1",
            "X-Tab: a\tb",
            "X-A-Rather-Long-Header-Name: kept",
            "Content-Type: text/plain; charset=utf-8",
            "Date: <date>",
            "Content-Length: 5",
            "Connection: close",
        ].joined(separator: "\r\n"))
        #expect(String(decoding: bytes, as: UTF8.self).hasSuffix("\r\n\r\nhello"))
    }

    @Test(arguments: [
        (HTTPStatus.created, "HTTP/1.1 201 Created"),
        (HTTPStatus(code: 200, reasonPhrase: "Fine"), "HTTP/1.1 200 Fine"),
        (HTTPStatus(code: 299), "HTTP/1.1 299 Status 299"),
        (HTTPStatus(code: 418, reasonPhrase: "Tea\r\npot"), "HTTP/1.1 418 Teapot"),
        (HTTPStatus(code: 999, reasonPhrase: "Odd"), "HTTP/1.1 999 Odd"),
        (HTTPStatus.gatewayTimeout, "HTTP/1.1 504 Gateway Timeout"),
    ])
    func statusLineUsesTheStandardOrASanitisedReasonPhrase(status: HTTPStatus, line: String) async throws {
        let bytes = try await Self.exchange(
            FixedResponder(responses: ["/": HTTPResponse(status: status, text: "x")]),
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        #expect(Self.headWithoutDate(bytes).split(separator: "\r\n").first.map(String.init) == line)
    }

    @Test func contentLengthIsWrittenForEveryBodySizeAndOmittedWhereNoBodyIsAllowed() async throws {
        var responses: [String: HTTPResponse] = [
            "/204": HTTPResponse(status: .noContent),
            "/304": HTTPResponse(status: .notModified, headers: ["ETag": "\"v1\""]),
        ]
        let sizes = [0, 7, 10, 99, 1_234_567]
        for size in sizes {
            responses["/\(size)"] = HTTPResponse(status: .ok, body: [UInt8](repeating: UInt8(ascii: "y"), count: size))
        }
        try await withServer(responder: FixedResponder(responses: responses)) { server in
            let client = try RawClient(port: server.localPort)
            for size in sizes {
                try await client.send("GET /\(size) HTTP/1.1\r\nHost: x\r\n\r\n")
                let response = try #require(await client.readResponse())
                #expect(response.header("Content-Length") == String(size))
                #expect(response.body.count == size)
            }
            for path in ["/204", "/304"] {
                try await client.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
                let response = try #require(await client.readResponse())
                #expect(response.header("Content-Length") == nil)
                #expect(response.body.isEmpty)
            }
            // Still in step: the next response is read from the right place.
            try await client.send("GET /7 HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await client.readResponse()?.text == "yyyyyyy")
        }
    }

    @Test func requestsSplitAcrossReadsAreAnsweredInOrder() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.localPort)
            // Split inside the request line, inside a header, after a complete request (so the rest
            // is a pipelined partial request) and inside a body.
            let parts = [
                "GET /hel", "lo HTTP/1.1\r\nHo", "st: x\r\n\r\nGET /items/1 HTTP/1.1\r\nHo", "st: x\r\n\r\n",
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc", "def",
                "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ]
            try await client.sendSeparately(parts)
            let (bytes, end) = await client.readUntilClose()
            #expect(TestResponse.parseAll(bytes).map(\.text) == ["hello", "item 1 via /items/{id}", "abcdef", "hello"])
            #expect(end == .closed)
        }
    }

    @Test func oneByteAtATime() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.localPort)
            try await client.sendEachByteSeparately("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
            #expect(await client.readResponse()?.text == "ok")
        }
    }

    @Test func manyPipelinedRequestsInOneWriteAreAnsweredInOrder() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.localPort)
            let requests = (0..<200).map { "GET /items/\($0) HTTP/1.1\r\nHost: x\r\n\r\n" }.joined()
            try await client.send(requests + "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let (bytes, end) = await client.readUntilClose()
            let texts = TestResponse.parseAll(bytes).map(\.text)
            #expect(texts == (0..<200).map { "item \($0) via /items/{id}" } + ["hello"])
            #expect(end == .closed)
        }
    }

    @Test func pipelinedLargeResponsesQueueBehindOutputTheSocketHasNotTaken() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.localPort)
            // About 6 MiB of responses before the client reads anything: most of it waits in the server.
            let requests = (0..<12).map { "GET /big/\(500_000 + $0) HTTP/1.1\r\nHost: x\r\n\r\n" }.joined()
            try await client.send(requests + "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            for index in 0..<12 {
                let response = try #require(await client.readResponse())
                #expect(response.body.count == 500_000 + index)
                #expect(response.body.allSatisfy { $0 == UInt8(ascii: "x") })
            }
            #expect(await client.readResponse()?.text == "hello")
        }
    }

    @Test func truncatedBodyFaultSendsTheFullLengthThenClosesEarly() async throws {
        var response = HTTPResponse(status: .ok, text: "hello world")
        response.transportFault = .truncateBody(afterBytes: 3)
        let bytes = try await Self.exchange(
            FixedResponder(responses: ["/": response]), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", injectsTransportFaults: true)
        #expect(Self.headWithoutDate(bytes) == [
            "HTTP/1.1 200 OK",
            "Content-Type: text/plain; charset=utf-8",
            "Date: <date>",
            "Content-Length: 11",
            "Connection: close",
        ].joined(separator: "\r\n"))
        #expect(String(decoding: bytes, as: UTF8.self).hasSuffix("\r\n\r\nhel"))
    }

    @Test func aServerThatInjectsNoFaultsDeliversTheResponseWhole() async throws {
        var response = HTTPResponse(status: .ok, text: "hello world")
        response.transportFault = .truncateBody(afterBytes: 3)
        let bytes = try await Self.exchange(
            FixedResponder(responses: ["/": response]), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(String(decoding: bytes, as: UTF8.self).hasSuffix("\r\n\r\nhello world"))
    }

    @Test func resetFaultSendsNothing() async throws {
        var response = HTTPResponse(status: .ok, text: "hello")
        response.transportFault = .resetConnection
        try await withServer(.forTests(injectsTransportFaults: true), responder: FixedResponder(responses: ["/": response])) { server in
            let client = try RawClient(port: server.localPort)
            try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            let (bytes, end) = await client.readUntilClose()
            #expect(bytes.isEmpty)
            #expect(end == .reset)
        }
    }
}
