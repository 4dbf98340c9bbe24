import Testing
import GatewayHTTP

/// What a row expects of the first message in its input.
enum ExpectedOutcome: Sendable {
    case status(Int)
    case request(ExpectedRequest)
}

struct ExpectedRequest: Sendable {
    var method = "GET"
    var target = "/"
    /// Checked only when given (path and query together).
    var pathAndQuery: (path: String, query: String?)?
    var version = HTTPVersion.http1_1
    /// Checked only when given.
    var headers: [[String]]?
    var body = ""
}

struct ParserCase: Sendable, CustomTestStringConvertible {
    let name: String
    let input: [UInt8]
    let expected: ExpectedOutcome
    var limits = HTTPParserLimits()
    var testDescription: String { name }
}

private let host = "Host: example.com\r\n"

private let smallBody = HTTPParserLimits(maxBodyBytes: 16)

private func rejects(_ name: String, _ input: String, _ status: Int, limits: HTTPParserLimits = HTTPParserLimits()) -> ParserCase {
    ParserCase(name: "\(status): \(name)", input: Array(input.utf8), expected: .status(status), limits: limits)
}

private func accepts(
    _ name: String, _ input: String, _ request: ExpectedRequest = ExpectedRequest(), limits: HTTPParserLimits = HTTPParserLimits()
) -> ParserCase {
    ParserCase(name: "ok: \(name)", input: Array(input.utf8), expected: .request(request), limits: limits)
}

private func chunked(_ body: String, extraHeaders: String = "") -> String {
    "POST / HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\(extraHeaders)\r\n\(body)"
}

private func withContentLength(_ value: String, body: String = "") -> String {
    "POST / HTTP/1.1\r\n\(host)Content-Length: \(value)\r\n\r\n\(body)"
}

private func withTransferEncoding(_ value: String, version: String = "HTTP/1.1") -> String {
    "POST / \(version)\r\n\(host)Transfer-Encoding: \(value)\r\n\r\n0\r\n\r\n"
}

private func withHeader(_ field: String) -> String {
    "GET / HTTP/1.1\r\n\(host)\(field)\r\n\r\n"
}

private func withHost(_ value: String, version: String = "HTTP/1.1") -> String {
    "GET / \(version)\r\nHost: \(value)\r\n\r\n"
}

let hostileCases: [ParserCase] = [
    // Request line
    accepts("simple GET", "GET /executions?limit=5 HTTP/1.1\r\n\(host)\r\n",
            ExpectedRequest(target: "/executions?limit=5", pathAndQuery: ("/executions", "limit=5"), headers: [["Host", "example.com"]])),
    accepts("one leading empty line", "\r\nGET / HTTP/1.1\r\n\(host)\r\n"),
    accepts("sixteen leading empty lines", String(repeating: "\r\n", count: 16) + "GET / HTTP/1.1\r\n\(host)\r\n"),
    rejects("seventeen leading empty lines", String(repeating: "\r\n", count: 17) + "GET / HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("leading bare LF", "\nGET / HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("leading bare CR", "\rGET / HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("two spaces after method", "GET  / HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("two spaces before version", "GET /  HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("tab as separator", "GET\t/ HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("empty method", " / HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("non-token method", "GE(T / HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("method longer than 24 bytes", String(repeating: "A", count: 25) + " / HTTP/1.1\r\n\(host)\r\n", 501),
    accepts("unknown 24-byte method", String(repeating: "A", count: 24) + " / HTTP/1.1\r\n\(host)\r\n",
            ExpectedRequest(method: String(repeating: "A", count: 24))),
    accepts("lowercase method is a different token", "get / HTTP/1.1\r\n\(host)\r\n", ExpectedRequest(method: "get")),
    rejects("fragment in target", "GET /a#frag HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("space inside target", "GET /a b HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("control byte in target", "GET /a\u{01}b HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("DEL in target", "GET /a\u{7F} HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("non-ASCII byte in target", "GET /café HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("angle bracket in target", "GET /<script> HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("malformed percent escape", "GET /%zz HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("truncated percent escape", "GET /a%4 HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("relative target", "GET a/b HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("brackets in origin-form", "GET /[x] HTTP/1.1\r\n\(host)\r\n", 400),
    accepts("asterisk-form with OPTIONS", "OPTIONS * HTTP/1.1\r\n\(host)\r\n",
            ExpectedRequest(method: "OPTIONS", target: "*")),
    rejects("asterisk-form with GET", "GET * HTTP/1.1\r\n\(host)\r\n", 400),
    accepts("absolute-form", "GET http://example.com/p/q?x=1 HTTP/1.1\r\n\(host)\r\n",
            ExpectedRequest(target: "http://example.com/p/q?x=1", pathAndQuery: ("/p/q", "x=1"))),
    accepts("absolute-form https, port, no path", "GET HTTPS://example.com:8443 HTTP/1.1\r\n\(host)\r\n",
            ExpectedRequest(target: "HTTPS://example.com:8443", pathAndQuery: ("/", nil))),
    accepts("absolute-form query without path", "GET http://example.com?a=b HTTP/1.1\r\n\(host)\r\n",
            ExpectedRequest(target: "http://example.com?a=b", pathAndQuery: ("/", "a=b"))),
    rejects("absolute-form other scheme", "GET ftp://example.com/ HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("absolute-form with userinfo", "GET http://user@example.com/ HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("absolute-form empty host", "GET http:///p HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("absolute-form single slash", "GET http:/example.com/ HTTP/1.1\r\n\(host)\r\n", 400),
    accepts("authority-form with CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            ExpectedRequest(method: "CONNECT", target: "example.com:443")),
    rejects("CONNECT without port", "CONNECT example.com HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("CONNECT with origin-form", "CONNECT / HTTP/1.1\r\n\(host)\r\n", 400),
    rejects("authority-form with GET", "GET example.com:443 HTTP/1.1\r\n\(host)\r\n", 400),
    // Version
    rejects("HTTP/2.0", "GET / HTTP/2.0\r\n\(host)\r\n", 505),
    rejects("HTTP/1.2", "GET / HTTP/1.2\r\n\(host)\r\n", 505),
    rejects("HTTP/0.9", "GET / HTTP/0.9\r\n\(host)\r\n", 505),
    rejects("HTTP/3.0", "GET / HTTP/3.0\r\n\(host)\r\n", 505),
    rejects("lowercase version", "GET / http/1.1\r\n\(host)\r\n", 400),
    rejects("trailing garbage after version", "GET / HTTP/1.1x\r\n\(host)\r\n", 400),
    rejects("version without dot", "GET / HTTP/11\r\n\(host)\r\n", 400),
    rejects("missing version", "GET /\r\n\(host)\r\n", 400),
    rejects("bare LF after request line", "GET / HTTP/1.1\n\(host)\r\n", 400),
    rejects("bare CR after request line", "GET / HTTP/1.1\r\(host)\r\n", 400),
    accepts("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", ExpectedRequest(version: .http1_0, headers: [])),
    // Field lines
    rejects("space before colon", withHeader("X-A : 1"), 400),
    rejects("tab before colon", withHeader("X-A\t: 1"), 400),
    rejects("obs-fold", withHeader("X-A: 1\r\n  continued"), 400),
    rejects("whitespace before first header", "GET / HTTP/1.1\r\n \(host)\r\n", 400),
    rejects("empty header name", withHeader(": value"), 400),
    rejects("non-token header name", withHeader("X(A): 1"), 400),
    rejects("non-ASCII header name", withHeader("Wéird: 1"), 400),
    rejects("header without colon", withHeader("X-A 1"), 400),
    rejects("NUL in value", withHeader("X-A: a\u{0}b"), 400),
    rejects("CR inside value", withHeader("X-A: a\rb"), 400),
    rejects("bare LF ends field line", "GET / HTTP/1.1\r\n\(host)X-A: 1\n\r\n", 400),
    rejects("DEL in value", withHeader("X-A: a\u{7F}"), 400),
    rejects("other control byte in value", withHeader("X-A: a\u{1B}b"), 400),
    rejects("bare LF ends header section", "GET / HTTP/1.1\r\n\(host)\n", 400),
    rejects("bare CR ends header section", "GET / HTTP/1.1\r\n\(host)\r\r\n", 400),
    accepts("obs-text in value and OWS trimmed", withHeader("X-A: \t ✓ a\tb \t "),
            ExpectedRequest(headers: [["Host", "example.com"], ["X-A", "✓ a\tb"]])),
    // Past the first eight bytes (values are scanned a word at a time)
    rejects("DEL after the first word of a value", withHeader("X-A: abcdefghij\u{7F}k"), 400),
    rejects("control byte deep in a long value", withHeader("X-A: " + String(repeating: "v", count: 40) + "\u{1}v"), 400),
    accepts("long value with a tab inside and a long whitespace tail",
            withHeader("X-A: 0123456789\tabcdefgh   \t\t        "),
            ExpectedRequest(headers: [["Host", "example.com"], ["X-A", "0123456789\tabcdefgh"]])),
    accepts("empty value", withHeader("X-Empty:   "), ExpectedRequest(headers: [["Host", "example.com"], ["X-Empty", ""]])),
    accepts("names kept as sent", "GET / HTTP/1.1\r\nhOsT: example.com\r\nx-MiXeD:v\r\n\r\n",
            ExpectedRequest(headers: [["hOsT", "example.com"], ["x-MiXeD", "v"]])),
    // Host
    rejects("missing Host on HTTP/1.1", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
    rejects("repeated Host", "GET / HTTP/1.1\r\n\(host)\(host)\r\n", 400),
    rejects("repeated Host on HTTP/1.0", "GET / HTTP/1.0\r\n\(host)\(host)\r\n", 400),
    rejects("Host with space", withHost("exa mple.com"), 400),
    rejects("Host with userinfo", withHost("user@example.com"), 400),
    rejects("Host with path", withHost("example.com/x"), 400),
    rejects("empty Host", withHost(""), 400),
    rejects("Host with bad IPv6", withHost("[::g]"), 400),
    rejects("Host with unclosed IPv6", withHost("[::1"), 400),
    rejects("Host port out of range", withHost("example.com:99999"), 400),
    rejects("Host with empty port", withHost("example.com:"), 400),
    rejects("Host with non-digit port", withHost("example.com:8o"), 400),
    rejects("invalid Host on HTTP/1.0", withHost("a b", version: "HTTP/1.0"), 400),
    accepts("Host IPv6 with port", withHost("[2001:db8::1]:8080"), ExpectedRequest(headers: [["Host", "[2001:db8::1]:8080"]])),
    accepts("Host IPv4 with port", withHost("127.0.0.1:80")),
    accepts("Host with IPv4-mapped IPv6", withHost("[::ffff:10.0.0.1]")),
    // Content-Length
    accepts("Content-Length with leading zeros", withContentLength("010", body: "0123456789"),
            ExpectedRequest(method: "POST", body: "0123456789")),
    accepts("Content-Length zero", withContentLength("0"), ExpectedRequest(method: "POST")),
    rejects("empty Content-Length", withContentLength(""), 400),
    rejects("Content-Length +1", withContentLength("+1", body: "x"), 400),
    rejects("Content-Length -1", withContentLength("-1"), 400),
    rejects("Content-Length 0x10", withContentLength("0x10"), 400),
    rejects("Content-Length with inner space", withContentLength(" 1 2"), 400),
    rejects("Content-Length list 1, 2", withContentLength("1, 2"), 400),
    rejects("Content-Length 0,", withContentLength("0,"), 400),
    rejects("Content-Length list 5, 5", withContentLength("5, 5", body: "hello"), 400),
    rejects("Content-Length overflow", withContentLength("99999999999999999999"), 400),
    rejects("repeated equal Content-Length",
            "POST / HTTP/1.1\r\n\(host)Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    rejects("Content-Length with Transfer-Encoding",
            "POST / HTTP/1.1\r\n\(host)Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    rejects("Content-Length above limit", withContentLength("65537"), 413),
    accepts("body on GET", "GET / HTTP/1.1\r\n\(host)Content-Length: 2\r\n\r\nhi", ExpectedRequest(body: "hi")),
    // Transfer-Encoding
    rejects("Transfer-Encoding on HTTP/1.0", withTransferEncoding("chunked", version: "HTTP/1.0"), 400),
    rejects("empty Transfer-Encoding", withTransferEncoding(""), 400),
    rejects("Transfer-Encoding of only commas", withTransferEncoding(" , ,"), 400),
    rejects("chunked, chunked", withTransferEncoding("chunked, chunked"), 400),
    rejects("chunked across two fields twice",
            "POST / HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    rejects("chunked, gzip", withTransferEncoding("chunked, gzip"), 400),
    rejects("only gzip", withTransferEncoding("gzip"), 400),
    rejects("chunked with parameter", withTransferEncoding("chunked;q=1"), 400),
    rejects("foo, chunked", withTransferEncoding("foo, chunked"), 501),
    rejects("gzip, chunked", withTransferEncoding("gzip, chunked"), 501),
    rejects("gzip then chunked in separate fields",
            "POST / HTTP/1.1\r\n\(host)Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    accepts("Chunked is case-insensitive", withTransferEncoding("Chunked"), ExpectedRequest(method: "POST")),
    // Chunked body
    accepts("chunked body", chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), ExpectedRequest(method: "POST", body: "hello world")),
    accepts("uppercase hex and leading zeros", chunked("00A\r\n0123456789\r\n0\r\n\r\n"),
            ExpectedRequest(method: "POST", body: "0123456789")),
    accepts("chunk extensions", chunked("5;a=b ; c = \"q\\\"x\" ;d\r\nhello\r\n0;last\r\n\r\n"),
            ExpectedRequest(method: "POST", body: "hello")),
    accepts("trailers are validated and dropped", chunked("2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"),
            ExpectedRequest(method: "POST", headers: [["Host", "example.com"], ["Transfer-Encoding", "chunked"]], body: "hi")),
    rejects("chunk size with 0x", chunked("0x5\r\nhello\r\n0\r\n\r\n"), 400),
    rejects("chunk size with sign", chunked("+5\r\nhello\r\n0\r\n\r\n"), 400),
    rejects("chunk size with leading space", chunked(" 5\r\nhello\r\n0\r\n\r\n"), 400),
    rejects("chunk size with trailing space", chunked("5 \r\nhello\r\n0\r\n\r\n"), 400),
    rejects("chunk size with inner space", chunked("5 5\r\nhello\r\n0\r\n\r\n"), 400),
    rejects("empty chunk size", chunked("\r\nhello\r\n0\r\n\r\n"), 400),
    rejects("chunk size overflow", chunked("FFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n"), 400),
    rejects("chunk data longer than size", chunked("5\r\nhelloX\r\n0\r\n\r\n"), 400),
    rejects("chunk data shorter than size", chunked("5\r\nhell\r\n0\r\n\r\n"), 400),
    rejects("bare LF after chunk size", chunked("5\nhello\r\n0\r\n\r\n"), 400),
    rejects("bare LF after chunk data", chunked("5\r\nhello\n0\r\n\r\n"), 400),
    rejects("chunk extension without name", chunked("5;=x\r\nhello\r\n0\r\n\r\n"), 400),
    rejects("chunk extension with bad quoted byte", chunked("5;a=\"\u{1}\"\r\nhello\r\n0\r\n\r\n"), 400),
    rejects("invalid trailer name", chunked("0\r\nBad Name: 1\r\n\r\n"), 400),
    rejects("obs-fold in trailers", chunked("0\r\nX-A: 1\r\n folded\r\n\r\n"), 400),
    rejects("bare LF ends trailers", chunked("0\r\n\n"), 400),
    rejects("chunk size above body limit", chunked("10001\r\n"), 413),
    rejects("chunked total above limit", chunked("8\r\nabcdefgh\r\n9\r\n"), 413, limits: smallBody),
    accepts("chunked total exactly at limit", chunked("8\r\nabcdefgh\r\n8\r\nijklmnop\r\n0\r\n\r\n"),
            ExpectedRequest(method: "POST", body: "abcdefghijklmnop"), limits: smallBody),
    rejects("trailers count toward field limit", chunked("0\r\nX-T: 1\r\n\r\n"), 431,
            limits: HTTPParserLimits(maxHeaderFields: 2)),
    rejects("trailers count toward header bytes", chunked("0\r\nX-T: 1\r\n\r\n"), 431,
            limits: HTTPParserLimits(maxHeaderBytes: 75)),
    accepts("trailers exactly at header bytes", chunked("0\r\nX-T: 1\r\n\r\n"),
            ExpectedRequest(method: "POST"), limits: HTTPParserLimits(maxHeaderBytes: 76)),
]

@Suite struct HTTPRequestParserHostileInputTests {
    @Test func tableIsLargeEnough() {
        #expect(hostileCases.count >= 60)
        #expect(Set(hostileCases.map(\.name)).count == hostileCases.count, "row names must be unique")
    }

    @Test(arguments: hostileCases)
    func hostileInput(_ testCase: ParserCase) {
        let (outcomes, disagreement) = parseUnderEverySplit(testCase.input, limits: testCase.limits)
        #expect(disagreement == nil, "split-dependent result; whole buffer gave \(outcomes)")
        guard let first = outcomes.first else {
            Issue.record("no outcome at all")
            return
        }
        switch (testCase.expected, first) {
        case (.status(let wanted), .failure(let status, _)):
            #expect(status == wanted, "\(first)")
        case (.request(let wanted), .request(let request)):
            #expect(request.method == wanted.method)
            #expect(request.target == wanted.target)
            #expect(request.version == wanted.version)
            #expect(String(decoding: request.body, as: UTF8.self) == wanted.body)
            if let pathAndQuery = wanted.pathAndQuery {
                #expect(request.path == pathAndQuery.path)
                #expect(request.query == pathAndQuery.query)
            }
            if let headers = wanted.headers { #expect(request.headers == headers) }
            #expect(outcomes.count == 1, "the whole input is one message: \(outcomes)")
        default:
            Issue.record("expected \(testCase.expected), got \(first)")
        }
    }
}
