import Testing
@testable import GatewayHTTP

@Suite struct QueryTests {
    @Test func decodesPairsInOrder() {
        let items = parseQueryItems("limit=20&status=running%2Cfailed&q=a+b&q=%E2%9C%93&flag")
        #expect(items.map(\.name) == ["limit", "status", "q", "q", "flag"])
        #expect(items.map(\.value) == ["20", "running,failed", "a b", "✓", ""])
    }

    @Test func keepsMalformedEscapesLiterally() {
        #expect(percentDecode("100%".utf8) == "100%")
        #expect(percentDecode("%zz%4".utf8) == "%zz%4")
        #expect(percentDecode("a+b".utf8, plusIsSpace: false) == "a+b")
    }

    @Test func encodesEverythingButUnreserved() {
        #expect(percentEncode("a b/c?d=é~") == "a%20b%2Fc%3Fd%3D%C3%A9~")
        #expect(percentDecode(percentEncode("kaizen:ex 1/✓").utf8) == "kaizen:ex 1/✓")
    }

    @Test func requestSplitsTargetAndKeepAlive() {
        var request = HTTPRequest(method: .get, target: "/executions?limit=5", version: .http1_1)
        #expect(request.path == "/executions")
        #expect(request.query == "limit=5")
        #expect(request.wantsKeepAlive)
        request.headers.add(name: "Connection", value: "Keep-Alive, Close")
        #expect(!request.wantsKeepAlive)
        let old = HTTPRequest(method: .get, target: "/", version: .http1_0, headers: ["connection": "keep-alive"])
        #expect(old.wantsKeepAlive)
        #expect(!HTTPRequest(method: .get, target: "/", version: .http1_0).wantsKeepAlive)
    }

    @Test func headerLookupIsCaseInsensitive() {
        var headers: HTTPHeaders = ["Content-Type": "application/json", "X-A": "1"]
        headers.add(name: "x-a", value: "2")
        #expect(headers["content-type"] == "application/json")
        #expect(headers.values(for: "X-a") == ["1", "2"])
        headers.replaceOrAdd(name: "X-A", value: "3")
        #expect(headers.values(for: "x-a") == ["3"])
    }

    @Test func aPreparedNameReplacesEveryFieldOfThatNameInAnyCase() {
        var headers: HTTPHeaders = ["retry-after": "9", "Content-Type": "text/plain", "RETRY-AFTER": "8"]
        let retryAfter = HTTPFieldName("Retry-After")
        #expect(retryAfter.canonicalName == "retry-after")
        headers.replaceOrAdd(retryAfter, value: "1")
        #expect(headers.values(for: "Retry-After") == ["1"])
        #expect(headers.fields.map(\.name) == ["Content-Type", "Retry-After"])
        headers.replaceOrAdd(HTTPFieldName("RateLimit-Remaining"), value: "0")
        #expect(headers["ratelimit-remaining"] == "0" && headers.count == 3)
    }
}
