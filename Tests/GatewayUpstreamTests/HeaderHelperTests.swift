@testable import GatewayUpstream
import Testing

@Suite struct RetryAfterTests {
    let now: Int64 = 784_111_777  // Sun, 06 Nov 1994 08:49:37 GMT

    @Test func delaySeconds() {
        #expect(RetryAfter.seconds(from: "120", nowUnixSeconds: now) == 120)
        #expect(RetryAfter.seconds(from: " 0 ", nowUnixSeconds: now) == 0)
        #expect(RetryAfter.seconds(from: "99999999999999999999999", nowUnixSeconds: now) == 2_147_483_648)
    }

    @Test func theThreeHTTPDateForms() {
        #expect(RetryAfter.seconds(from: "Sun, 06 Nov 1994 08:51:37 GMT", nowUnixSeconds: now) == 120)
        #expect(RetryAfter.seconds(from: "Sunday, 06-Nov-94 08:51:37 GMT", nowUnixSeconds: now) == 120)
        #expect(RetryAfter.seconds(from: "Sun Nov  6 08:51:37 1994", nowUnixSeconds: now) == 120)
        #expect(RetryAfter.httpDateUnixSeconds("Thu, 01 Jan 1970 00:00:00 GMT", nowUnixSeconds: now) == 0)
        #expect(RetryAfter.httpDateUnixSeconds("Tue, 29 Feb 2000 23:59:59 GMT", nowUnixSeconds: now) == 951_868_799)
    }

    @Test func aDateInThePastMeansNow() {
        #expect(RetryAfter.seconds(from: "Sun, 06 Nov 1994 08:00:00 GMT", nowUnixSeconds: now) == 0)
    }

    @Test func twoDigitYearsMoreThanFiftyYearsAheadAreInThePast() {
        // Seen in 1994, "43" is 2043 (49 years ahead), "45" is 1945 (2045 would be 51 years ahead).
        #expect(RetryAfter.httpDateUnixSeconds("Friday, 06-Nov-43 00:00:00 GMT", nowUnixSeconds: now) == 2_330_380_800)
        #expect(RetryAfter.httpDateUnixSeconds("Tuesday, 06-Nov-45 00:00:00 GMT", nowUnixSeconds: now) == -762_220_800)
    }

    @Test(arguments: [
        "", "soon", "-5", "1.5", "12 ", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun,06 Nov 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT", "Sun Nov  6 08:49 1994",
    ])
    func invalidValuesAreIgnored(value: String) {
        if value == "12 " {
            #expect(RetryAfter.seconds(from: value, nowUnixSeconds: now) == 12)  // surrounding spaces are fine
        } else {
            #expect(RetryAfter.seconds(from: value, nowUnixSeconds: now) == nil)
        }
    }
}


@Suite struct DescriptionTests {
    @Test func requestDescriptionShowsNeitherHeaderValuesNorQuery() {
        let request = UpstreamRequest(
            method: .post, url: "https://user:pw@api.test/v1/executions?token=abc#frag",
            headers: ["Authorization": "Bearer sk_live_123"], body: Array("{}".utf8))
        #expect(request.description == "POST https://api.test/v1/executions (headers: Authorization; body 2 bytes)")
        #expect(String(reflecting: request) == request.description)
    }

    @Test func httpStatusDescriptionOmitsTheBody() {
        let error = UpstreamError.httpStatus(status: 401, body: Array("invalid key sk_live_123".utf8), retryAfterSeconds: nil)
        #expect(error.description == "upstream answered HTTP 401 (23 body bytes)")
        #expect(String(reflecting: error) == error.description)
    }

    @Test func onlyServerSideTroubleCountsAsUpstreamFailure() {
        #expect(UpstreamError.timeout.indicatesUpstreamFailure)
        #expect(UpstreamError.connection(reason: "x").indicatesUpstreamFailure)
        #expect(UpstreamError.httpStatus(status: 503, body: [], retryAfterSeconds: nil).indicatesUpstreamFailure)
        #expect(!UpstreamError.httpStatus(status: 429, body: [], retryAfterSeconds: 1).indicatesUpstreamFailure)
        #expect(!UpstreamError.cancelled.indicatesUpstreamFailure)
        #expect(!UpstreamError.bodyTooLarge(limitBytes: 1).indicatesUpstreamFailure)
    }
}
