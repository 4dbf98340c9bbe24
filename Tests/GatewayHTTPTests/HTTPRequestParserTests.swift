import Testing
import GatewayHTTP

/// One call of `parse` on a slice of `input`, with the typed error surfaced as a Result.
private func parseOnce(_ parser: inout HTTPRequestParser, _ input: ArraySlice<UInt8>) -> Result<(consumed: Int, request: HTTPRequest?), HTTPParseError> {
    input.withUnsafeBytes { buffer in
        Result { () throws(HTTPParseError) in try parser.parse(buffer) }
    }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite struct HTTPRequestParserTests {
    @Test func pipelinedRequestsAreParsedOneAfterAnother() throws {
        let first = "GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
        let second = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
        let third = "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        let input = bytes(first + second + third)
        var parser = HTTPRequestParser()
        var offset = 0
        var requests: [HTTPRequest] = []
        var consumedPerCall: [Int] = []
        while offset < input.count {
            let (consumed, request) = try parseOnce(&parser, input[offset...]).get()
            consumedPerCall.append(consumed)
            offset += consumed
            if let request { requests.append(request) }
        }
        #expect(consumedPerCall == [first.utf8.count, second.utf8.count, third.utf8.count])
        #expect(requests.map(\.method) == [.get, .post, .put])
        #expect(requests.map(\.path) == ["/a", "/b", "/c"])
        #expect(requests.map(\.query) == ["x=1", nil, nil])
        #expect(requests.map { String(decoding: $0.body, as: UTF8.self) } == ["", "hello", "abc"])
        #expect(parser.isIdle)
    }

    @Test func pipelinedStreamIsSplitInvariant() {
        let input = bytes(
            "GET / HTTP/1.1\r\nHost: h\r\n\r\n\r\nPOST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"
                + "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;e=1\r\nx\r\n0\r\nT: 1\r\n\r\n"
                + "GET /bad HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"
        )
        let (outcomes, disagreement) = parseUnderEverySplit(input)
        #expect(disagreement == nil)
        #expect(outcomes.count == 4)
        #expect(outcomes.last == .failure(status: 400, reason: "repeated Content-Length"))
    }

    @Test func errorsAreStickyAndNeverResynchronise() {
        var parser = HTTPRequestParser()
        let first = parseOnce(&parser, bytes("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")[...])
        guard case .failure(let error) = first else {
            Issue.record("bad chunk size accepted")
            return
        }
        #expect(error.status == .badRequest)
        #expect(error.description == "400 invalid chunk size")
        let valid = bytes("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        for _ in 0..<3 {
            guard case .failure(let again) = parseOnce(&parser, valid[...]) else {
                Issue.record("parser resynchronised after an error")
                return
            }
            #expect(again == error)
        }
        #expect(!parser.isIdle)
    }

    @Test func emptyInputConsumesNothing() throws {
        var parser = HTTPRequestParser()
        let (consumed, request) = try parseOnce(&parser, [][...]).get()
        #expect(consumed == 0)
        #expect(request == nil)
        #expect(parser.isIdle)
    }

    @Test func idleTracksMessageBoundaries() throws {
        var parser = HTTPRequestParser()
        #expect(parser.isIdle)
        _ = try parseOnce(&parser, bytes("\r\n")[...]).get()
        #expect(parser.isIdle, "a complete empty line before a request keeps the parser idle")
        _ = try parseOnce(&parser, bytes("\r")[...]).get()
        #expect(!parser.isIdle, "a pending CR is a started line")
        _ = try parseOnce(&parser, bytes("\nG")[...]).get()
        #expect(!parser.isIdle)
        let (_, request) = try parseOnce(&parser, bytes("ET / HTTP/1.1\r\nHost: h\r\n\r\n")[...]).get()
        #expect(request?.method == .get)
        #expect(parser.isIdle)
    }

    @Test func expectContinueIsReportedOnceTheHeadIsComplete() throws {
        var parser = HTTPRequestParser()
        let head = bytes("POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n")
        _ = try parseOnce(&parser, head[...]).get()
        #expect(!parser.expectsContinue, "the head is not complete yet")
        _ = try parseOnce(&parser, bytes("\r\n")[...]).get()
        #expect(parser.expectsContinue)
        _ = try parseOnce(&parser, bytes("ab")[...]).get()
        #expect(parser.expectsContinue)
        let (_, request) = try parseOnce(&parser, bytes("c")[...]).get()
        #expect(request?.body == bytes("abc"))
        #expect(!parser.expectsContinue)
    }

    @Test(arguments: [
        ("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", "no body to come"),
        ("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", "HTTP/1.0 ignores it"),
        ("POST / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\nContent-Length: 3\r\n\r\n", "other expectation"),
    ])
    func expectContinueIsNotReported(input: String, why: String) throws {
        var parser = HTTPRequestParser()
        _ = try parseOnce(&parser, bytes(input)[...]).get()
        #expect(!parser.expectsContinue, "\(why)")
    }

    @Test func chunkedExpectContinue() throws {
        var parser = HTTPRequestParser()
        _ = try parseOnce(&parser, bytes("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")[...]).get()
        #expect(parser.expectsContinue)
    }

    // MARK: Limits, detected before the oversized input has fully arrived

    @Test func longTargetIsRejectedAsSoonAsTheLimitIsPassed() {
        var parser = HTTPRequestParser()
        let atLimit = bytes("GET /" + String(repeating: "a", count: 32_767))
        #expect(throws: Never.self) { try parseOnce(&parser, atLimit[...]).get() }
        let result = parseOnce(&parser, bytes("a")[...])
        #expect(result.failureStatus == 414, "the 32769th target byte must be rejected without waiting for the line end")
        var exact = HTTPRequestParser()
        let fits = parseOnce(&exact, bytes("GET /" + String(repeating: "a", count: 32_767) + " HTTP/1.1\r\nHost: h\r\n\r\n")[...])
        #expect(fits.request?.target.utf8.count == 32_768)
    }

    @Test func largeHeaderSectionIsRejectedIncrementally() {
        var parser = HTTPRequestParser()
        let head = bytes("GET / HTTP/1.1\r\nHost: h\r\nX-Filler: " + String(repeating: "v", count: 60_000))
        var sawError: HTTPParseError?
        var failingPieceStart: Int?
        var fed = 0
        // Feed 1 KiB at a time; the error must come from the piece holding byte 49153, long before the head ends.
        while fed < head.count, sawError == nil {
            let piece = head[fed..<min(head.count, fed + 1024)]
            if case .failure(let error) = parseOnce(&parser, piece) {
                sawError = error
                failingPieceStart = fed
            }
            fed += piece.count
        }
        #expect(sawError?.status == .requestHeaderFieldsTooLarge)
        #expect(failingPieceStart == 49_152)
    }

    @Test func headerSectionExactlyAtLimitIsAccepted() {
        let prefix = "GET / HTTP/1.1\r\nHost: h\r\nX-Filler: "
        let filler = String(repeating: "v", count: 49_152 - prefix.utf8.count - 4)
        var parser = HTTPRequestParser()
        let input = bytes(prefix + filler + "\r\n\r\n")
        #expect(input.count == 49_152)
        #expect(parseOnce(&parser, input[...]).request != nil)
        var over = HTTPRequestParser()
        #expect(parseOnce(&over, bytes(prefix + filler + "v\r\n\r\n")[...]).failureStatus == 431)
    }

    @Test func tooManyFieldsIs431() {
        let fields = (0..<100).map { "X-\($0): 1\r\n" }.joined()
        var atLimit = HTTPRequestParser()
        #expect(parseOnce(&atLimit, bytes("GET / HTTP/1.1\r\n" + fields + "\r\n")[...]).failureStatus == 400, "100 fields fit but Host is missing")
        var withHost = HTTPRequestParser()
        #expect(parseOnce(&withHost, bytes("GET / HTTP/1.1\r\nHost: h\r\n" + fields)[...]).failureStatus == 431,
                "the 101st field is rejected before the head ends")
    }

    @Test func oversizedContentLengthIsRejectedBeforeTheBody() {
        var parser = HTTPRequestParser()
        let result = parseOnce(&parser, bytes("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 65537\r\n\r\n")[...])
        #expect(result.failureStatus == 413)
        var atLimit = HTTPRequestParser()
        let head = bytes("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 65536\r\n\r\n")
        #expect(parseOnce(&atLimit, head[...]).failureStatus == nil)
        let body = [UInt8](repeating: 0x61, count: 65536)
        #expect(parseOnce(&atLimit, body[...]).request?.body.count == 65536)
    }

    @Test func oversizedChunkIsRejectedBeforeItsData() {
        var parser = HTTPRequestParser(limits: HTTPParserLimits(maxBodyBytes: 10))
        let head = bytes("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n")
        #expect(parseOnce(&parser, head[...]).failureStatus == 413)
    }

    @Test func chunkExtensionsAreBounded() {
        var parser = HTTPRequestParser()
        let extensions = String(repeating: ";a=b", count: 1100)
        let input = bytes("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1" + extensions)
        #expect(parseOnce(&parser, input[...]).failureStatus == 400)
    }

    @Test func customLimitsApply() {
        let limits = HTTPParserLimits(maxRequestTargetBytes: 4, maxHeaderBytes: 64, maxHeaderFields: 1, maxBodyBytes: 2, maxMethodBytes: 3)
        #expect(parseUnderEverySplit(bytes("GET /abcd HTTP/1.1\r\n"), limits: limits).outcomes.first?.status == 414)
        #expect(parseUnderEverySplit(bytes("POST / HTTP/1.1\r\n"), limits: limits).outcomes.first?.status == 501)
        #expect(parseUnderEverySplit(bytes("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n"), limits: limits).outcomes.first?.status == 431)
        #expect(parseUnderEverySplit(bytes("PUT / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "y", count: 64)), limits: limits)
            .outcomes.first?.status == 431)
        #expect(parseUnderEverySplit(bytes("PUT / HTTP/1.1\r\nContent-Length: 3\r\n\r\n"), limits: limits).outcomes.first?.status == 400,
                "Host missing is only known at the end of the head, before the 413 of the body")
    }

    @Test func defaultLimitsMatchTheContract() {
        let limits = HTTPParserLimits()
        #expect(limits == HTTPParserLimits(maxRequestTargetBytes: 32_768, maxHeaderBytes: 49_152, maxHeaderFields: 100, maxBodyBytes: 65536, maxMethodBytes: 24))
    }

    @Test func parsedRequestKeepsEverythingAsSent() throws {
        var parser = HTTPRequestParser()
        let input = bytes("PATCH http://Example.com:8080/x/%2F?q=a+b&r HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\nX-Obs: caf\u{E9}\r\nContent-Length: 3\r\n\r\n{}\n")
        let request = try #require(try parseOnce(&parser, input[...]).get().request)
        #expect(request.method == .patch)
        #expect(request.target == "http://Example.com:8080/x/%2F?q=a+b&r")
        #expect(request.path == "/x/%2F")
        #expect(request.query == "q=a+b&r")
        #expect(request.version == .http1_1)
        #expect(request.headers["x-obs"] == "café")
        #expect(request.headers["content-length"] == "3")
        #expect(!request.wantsKeepAlive)
        #expect(request.body == bytes("{}\n"))
    }
}

extension Result where Success == (consumed: Int, request: HTTPRequest?), Failure == HTTPParseError {
    var failureStatus: Int? {
        if case .failure(let error) = self { return error.status.code }
        return nil
    }

    var request: HTTPRequest? {
        if case .success(let value) = self { return value.request }
        return nil
    }
}

extension ParseOutcome {
    var status: Int? {
        if case .failure(let status, _) = self { return status }
        return nil
    }
}
