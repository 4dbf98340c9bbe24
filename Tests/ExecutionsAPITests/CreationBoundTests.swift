@testable import ExecutionsAPI
import GatewayJSON
import GatewayProviders
import Testing

/// `createdAfter`/`createdBefore` take every RFC 3339 date-time. Found by Schemathesis: years
/// before 1678 were refused as "not RFC 3339", 1677-09-21T00:12:44Z crashed the gateway when the
/// Kaizen adapter rendered the bound (`Timestamp.rfc3339` overflows at the very edge of its range),
/// and a bound past 2262 went upstream, where the provider refused it (502).
@Suite struct CreationBoundTests {
    func parse(_ items: [(String, String)]) -> Result<ParsedListParameters, Problem> {
        ListParameterParser.parse(items.map { (name: $0.0, value: $0.1) }, knownProviders: ["a"], usableProviders: ["a"])
    }

    func filter(_ items: [(String, String)]) throws -> ExecutionFilter {
        try parse(items).get().query.filter
    }

    @Test func boundsInsideTheRangeAreExact() throws {
        let filter = try filter([("createdAfter", "2026-11-20T11:00:00.5+01:00"), ("createdBefore", "2026-11-20T10:00:00.5Z")])
        #expect(filter.createdAfter == Timestamp(rfc3339: "2026-11-20T10:00:00.5Z"))
        #expect(filter.createdBefore == Timestamp(rfc3339: "2026-11-20T10:00:00.5Z"))
    }

    static let early = ["0000-01-01T00:00:00Z", "0126-05-04T00:13:12.31Z", "0241-03-22T00:29:00+08:15", "1677-09-21T00:12:44Z", "0000-02-29T23:59:60-23:59"]
    static let late = ["2262-04-11T23:47:16Z", "6818-03-29T02:35:33Z", "9999-12-31T23:59:59.999999999Z", "3000-02-28T00:00:00-01:00"]

    @Test(arguments: early)
    func anEarlyCreatedAfterIsNoBoundAndAnEarlyCreatedBeforeMatchesNothing(_ value: String) throws {
        #expect(try filter([("createdAfter", value)]) == ExecutionFilter())
        let before = try filter([("createdBefore", value)])
        #expect(before.isUnsatisfiable)
        // Never rendered upstream (adapters skip unsatisfiable filters), yet safe to render.
        #expect(before.createdAfter?.rfc3339 == "2262-04-11T23:47:15.999999999Z")
        #expect(before.createdBefore?.rfc3339 == "1677-09-21T00:12:45Z")
    }

    @Test(arguments: late)
    func aLateCreatedBeforeIsNoBoundAndALateCreatedAfterMatchesNothing(_ value: String) throws {
        #expect(try filter([("createdBefore", value)]) == ExecutionFilter())
        #expect(try filter([("createdAfter", value)]).isUnsatisfiable)
        #expect(try filter([("createdAfter", "2026-11-20T10:00:00Z"), ("createdBefore", value)]).createdBefore == nil)
    }

    @Test func theEdgesOfTheRangeAreKeptExactly() throws {
        let edges = try filter([("createdAfter", "1677-09-21T00:12:45Z"), ("createdBefore", "2262-04-11T23:47:15.5Z")])
        #expect(edges.createdAfter == CreationBound.earliest)
        #expect(edges.createdBefore?.rfc3339 == "2262-04-11T23:47:15.5Z")
        #expect(!edges.isUnsatisfiable)
    }

    /// A bound no execution can meet, and a range that holds no instant, are an empty last page
    /// without an upstream call.
    @Test func aBoundNoExecutionCanMeetGivesAnEmptyLastPageWithoutAnUpstreamCall() async throws {
        let provider = InMemoryProvider(name: "a", executions: [makeExecution(provider: "a", id: "1", second: 1, status: .running)])
        let service = ExecutionsService(
            providers: [ProviderBinding(provider: provider, credential: UpstreamCredential(secret: "c"))],
            cursorSecret: "secret-1", now: { 0 }
        )
        let facts = RequestFacts(requestID: "r", traceparent: "", bypassCache: false)
        for query in [
            [("createdAfter", "6818-03-29T02:35:33Z")],
            [("createdAfter", "1970-01-01T00:00:02Z"), ("createdBefore", "1970-01-01T00:00:01Z")],
        ] {
            let answer = try await service.list(query, client: .anonymous, facts: facts).get()
            let page = try JSONParser.parse(answer.body)
            #expect(page["data"]?.arrayValue?.isEmpty == true)
            #expect(page["page"]?["nextCursor"] == .null)
        }
        #expect(provider.listCalls == 0)
        let all = try await service.list([("createdAfter", "0126-05-04T00:13:12.31Z")], client: .anonymous, facts: facts).get()
        #expect(try JSONParser.parse(all.body)["data"]?.arrayValue?.count == 1)
    }

    @Test func aRangeThatHoldsNoInstantIsNoErrorAndMatchesNothing() throws {
        let inverted = [("createdAfter", "2026-11-20T10:00:00.000000001Z"), ("createdBefore", "2026-11-20T10:00:00Z")]
        #expect(parse(inverted).failureNames == [])
        #expect(try filter(inverted).isUnsatisfiable)
        // Beyond 2262 both map to one filter value, yet the first is later: still nothing.
        #expect(try filter([("createdAfter", "3001-01-01T00:00:00Z"), ("createdBefore", "3000-12-31T23:59:59.9Z")]).isUnsatisfiable)
        // An offset carries the instant across a year boundary: 3000-12-31T23:00-05:00 is 3001-01-01T04:00Z.
        #expect(try filter([("createdAfter", "3000-12-31T23:00:00-05:00"), ("createdBefore", "3001-01-01T03:59:59Z")]).isUnsatisfiable)
        // One instant, given twice with different offsets, is a range that holds it.
        let single = try filter([("createdAfter", "2026-11-20T11:00:00.5+01:00"), ("createdBefore", "2026-11-20T10:00:00.5Z")])
        #expect(!single.isUnsatisfiable)
        #expect(single.createdAfter == Timestamp(rfc3339: "2026-11-20T10:00:00.5Z"))
        #expect(single.createdBefore == Timestamp(rfc3339: "2026-11-20T10:00:00.5Z"))
    }

    @Test(arguments: ["0126-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "10000-01-01T00:00:00Z", "-001-01-01T00:00:00Z", "0126-05-04", "0126-05-04T00:13:12.Z"])
    func impossibleDatesAreStillRefused(_ value: String) {
        #expect(parse([("createdAfter", value)]).failureNames == ["createdAfter"])
    }

    @Test func leapDaysOfLeapYearsOutsideTheRangeAreAccepted() {
        #expect(parse([("createdAfter", "0400-02-29T00:00:00Z"), ("createdBefore", "2400-02-29T00:00:00Z")]).failureNames == [])
    }
}

extension Result where Success == ParsedListParameters, Failure == Problem {
    var failureNames: [String] {
        if case .failure(let problem) = self { return problem.invalidParams.map(\.name) }
        return []
    }
}
