import GatewayHTTP
import GatewayServer
import GatewayTestSupport
import Testing

/// Every hostile-input case from RFC 9112 and the HTTP request-smuggling literature, sent over a
/// real socket: the server must answer with the exact status and then close the connection.
@Suite struct HostileInputTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let raw: String
        let status: Int
        var testDescription: String { name }
    }

    static let host = "Host: x\r\n"

    static let cases: [Case] = [
        // Content-Length
        Case(name: "differing Content-Length", raw: "POST /echo HTTP/1.1\r\n\(host)Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", status: 400),
        Case(name: "repeated equal Content-Length", raw: "POST /echo HTTP/1.1\r\n\(host)Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", status: 400),
        Case(name: "Content-Length list 1, 2", raw: "POST /echo HTTP/1.1\r\n\(host)Content-Length: 1, 2\r\n\r\nab", status: 400),
        Case(name: "empty Content-Length", raw: "POST /echo HTTP/1.1\r\n\(host)Content-Length: \r\n\r\n", status: 400),
        Case(name: "Content-Length 0,", raw: "POST /echo HTTP/1.1\r\n\(host)Content-Length: 0,\r\n\r\n", status: 400),
        Case(name: "Content-Length +1", raw: "POST /echo HTTP/1.1\r\n\(host)Content-Length: +1\r\n\r\na", status: 400),
        Case(name: "Content-Length 0x10", raw: "POST /echo HTTP/1.1\r\n\(host)Content-Length: 0x10\r\n\r\n", status: 400),
        Case(name: "Content-Length -1", raw: "POST /echo HTTP/1.1\r\n\(host)Content-Length: -1\r\n\r\n", status: 400),
        Case(name: "Content-Length overflow", raw: "POST /echo HTTP/1.1\r\n\(host)Content-Length: 99999999999999999999999\r\n\r\n", status: 400),
        Case(name: "Content-Length with Transfer-Encoding", raw: "POST /echo HTTP/1.1\r\n\(host)Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
        Case(name: "body larger than maxBodyBytes", raw: "POST /echo HTTP/1.1\r\n\(host)Content-Length: 70000\r\n\r\n", status: 413),
        // Transfer-Encoding
        Case(name: "Transfer-Encoding on HTTP/1.0", raw: "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
        Case(name: "chunked repeated", raw: "POST /echo HTTP/1.1\r\n\(host)Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", status: 400),
        Case(name: "chunked not last", raw: "POST /echo HTTP/1.1\r\n\(host)Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", status: 400),
        Case(name: "chunked repeated across fields", raw: "POST /echo HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
        Case(name: "empty Transfer-Encoding", raw: "POST /echo HTTP/1.1\r\n\(host)Transfer-Encoding: \r\n\r\n", status: 400),
        Case(name: "unknown transfer coding", raw: "POST /echo HTTP/1.1\r\n\(host)Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n", status: 501),
        Case(name: "bad chunk size", raw: "POST /echo HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", status: 400),
        Case(name: "chunk size with 0x", raw: "POST /echo HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", status: 400),
        Case(name: "chunk data longer than its size", raw: "POST /echo HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", status: 400),
        Case(name: "chunk without CRLF after data", raw: "POST /echo HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\r\n3\r\nabcGET / HTTP/1.1\r\n\r\n", status: 400),
        Case(name: "chunk size overflow", raw: "POST /echo HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFF\r\na\r\n0\r\n\r\n", status: 400),
        Case(name: "chunk size bare LF", raw: "POST /echo HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", status: 400),
        // Header syntax
        Case(name: "obs-fold", raw: "GET /hello HTTP/1.1\r\n\(host)X-A: 1\r\n  continued\r\n\r\n", status: 400),
        Case(name: "space before colon", raw: "GET /hello HTTP/1.1\r\n\(host)X-A : 1\r\n\r\n", status: 400),
        Case(name: "whitespace before the first header", raw: "GET /hello HTTP/1.1\r\n \(host)\r\n", status: 400),
        Case(name: "bare LF line ending", raw: "GET /hello HTTP/1.1\n\(host)\r\n", status: 400),
        Case(name: "bare CR in a value", raw: "GET /hello HTTP/1.1\r\n\(host)X-A: 1\r2\r\n\r\n", status: 400),
        Case(name: "NUL in a value", raw: "GET /hello HTTP/1.1\r\n\(host)X-A: 1\u{0}2\r\n\r\n", status: 400),
        Case(name: "control byte in a value", raw: "GET /hello HTTP/1.1\r\n\(host)X-A: 1\u{1}2\r\n\r\n", status: 400),
        Case(name: "invalid header name", raw: "GET /hello HTTP/1.1\r\n\(host)X(A): 1\r\n\r\n", status: 400),
        Case(name: "empty header name", raw: "GET /hello HTTP/1.1\r\n\(host): 1\r\n\r\n", status: 400),
        // Host
        Case(name: "missing Host on 1.1", raw: "GET /hello HTTP/1.1\r\n\r\n", status: 400),
        Case(name: "repeated Host", raw: "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400),
        Case(name: "malformed Host", raw: "GET /hello HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400),
        Case(name: "Host with a path", raw: "GET /hello HTTP/1.1\r\nHost: a/b\r\n\r\n", status: 400),
        // Request line
        Case(name: "invalid method token", raw: "GE(T /hello HTTP/1.1\r\n\(host)\r\n", status: 400),
        Case(name: "over-long unknown method", raw: "\(String(repeating: "X", count: 64)) /hello HTTP/1.1\r\n\(host)\r\n", status: 501),
        Case(name: "double space in request line", raw: "GET  /hello HTTP/1.1\r\n\(host)\r\n", status: 400),
        Case(name: "target without slash", raw: "GET hello HTTP/1.1\r\n\(host)\r\n", status: 400),
        Case(name: "fragment in target", raw: "GET /hello#x HTTP/1.1\r\n\(host)\r\n", status: 400),
        Case(name: "control byte in target", raw: "GET /he\u{7}llo HTTP/1.1\r\n\(host)\r\n", status: 400),
        Case(name: "over-long target", raw: "GET /\(String(repeating: "a", count: 33_000)) HTTP/1.1\r\n\(host)\r\n", status: 414),
        Case(name: "HTTP/2.0 version", raw: "GET /hello HTTP/2.0\r\n\(host)\r\n", status: 505),
        Case(name: "HTTP/1.2 version", raw: "GET /hello HTTP/1.2\r\n\(host)\r\n", status: 505),
        Case(name: "malformed version", raw: "GET /hello HTTP/1.1x\r\n\(host)\r\n", status: 400),
        Case(name: "lowercase version", raw: "GET /hello http/1.1\r\n\(host)\r\n", status: 400),
        // Limits
        Case(name: "headers over maxHeaderBytes", raw: "GET /hello HTTP/1.1\r\n\(host)X-Big: \(String(repeating: "b", count: 50_000))\r\n\r\n", status: 431),
        Case(name: "more than 100 header fields", raw: "GET /hello HTTP/1.1\r\n\(host)\((0..<101).map { "X-\($0): v\r\n" }.joined())\r\n", status: 431),
    ]

    @Test(arguments: cases)
    func isRejectedAndClosed(_ hostile: Case) async throws {
        try await withServer { server in
            let client = try RawClient(port: server.localPort)
            // Whatever follows the hostile request must never be answered.
            try? await client.send(hostile.raw + "GET /hello HTTP/1.1\r\n\(Self.host)\r\n")
            let (bytes, end) = await client.readUntilClose()
            let responses = TestResponse.parseAll(bytes)
            #expect(responses.map(\.status) == [hostile.status], "\(hostile.name)")
            #expect(responses.first?.header("Connection") == "close")
            #expect(end != .timedOut, "connection left open after \(hostile.name)")
        }
    }

    @Test func validEdgeCasesAreAccepted() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.localPort)
            // 010 is decimal ten; chunk extensions and trailers are legal; absolute-form targets too.
            try await client.send("POST /echo HTTP/1.1\r\n\(Self.host)Content-Length: 010\r\n\r\n0123456789")
            #expect(await client.readResponse()?.text == "0123456789")
            try await client.send("POST /echo HTTP/1.1\r\n\(Self.host)Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
            #expect(await client.readResponse()?.text == "abcde")
            try await client.send("GET http://x/hello HTTP/1.1\r\n\(Self.host)\r\n")
            #expect(await client.readResponse()?.text == "hello")
        }
    }
}
