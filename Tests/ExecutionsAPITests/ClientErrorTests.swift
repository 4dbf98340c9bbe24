@testable import ExecutionsAPI
import GatewayJSON
import GatewayProviders
import Testing

/// What a client's problem may say (issue 15, items 6 and 7) and the offset hint past the last row.
@Suite struct ClientErrorTests {
    let facts = RequestFacts(requestID: "req-1", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", bypassCache: false)

    func service(_ providers: [InMemoryProvider], maxPageBytes: Int = .max) -> ExecutionsService {
        ExecutionsService(
            providers: providers.map { ProviderBinding(provider: $0, credential: UpstreamCredential(secret: "cred-\($0.name)")) },
            cursorSecret: "secret-1", now: { 0 }, maxPageBytes: maxPageBytes
        )
    }

    @Test(arguments: [
        ProviderError.unreachable(reason: "Failed to connect to 10.1.2.3 port 8443 after 1 ms: Couldn't connect to server"),
        .malformedResponse(reason: "execution 'x' has no RFC 3339 'createdAt' (from 10.1.2.3:8443)"),
    ])
    func upstreamFailuresNameTheProviderButNotWhatOnlyTheLogMayHold(_ error: ProviderError) {
        let problem = ExecutionsService.problem(for: error, provider: "b3os")
        #expect(problem.status == .badGateway)
        #expect(problem.detail.contains("'b3os'"))
        for leaked in ["10.1.2.3", "8443", "onnect", "RFC 3339", "createdAt"] {
            #expect(!problem.detail.contains(leaked), "'\(leaked)' in: \(problem.detail)")
        }
    }

    @Test func aSpentPerMinuteBudgetIsA503WithWhenToRetry() {
        let problem = ExecutionsService.problem(for: .minuteBudgetSpent(retryAfterSeconds: 42), provider: "kapso")
        #expect(problem.status == .serviceUnavailable && problem.kind == .upstreamPaused)
        #expect(problem.retryAfterSeconds == 42 && problem.provider == "kapso")
        #expect(problem.detail.contains("requestsPerMinute"))
        #expect(problem.response(requestID: "r").headers["Retry-After"] == "42")
    }

    @Test func anUnknownProviderIsAnsweredWithOnlyTheProvidersTheClientMayUse() async {
        let service = service(["kaizen", "kapso", "b3os"].map { InMemoryProvider(name: $0) })
        let client = GatewayClient(id: "narrow", allowedProviders: ["kapso"], upstreamCredentials: [:])
        let result = await service.list([("provider", "nope")], client: client, facts: facts)
        guard case .failure(let problem) = result else {
            Issue.record("expected a problem")
            return
        }
        #expect(problem.status == .badRequest)
        #expect(problem.invalidParams.map(\.reason) == ["unknown provider 'nope'; this client may use: kapso"])
    }

    @Test func aPagePastTheCapIsAProblemNamingWhatToReduceNeverATruncatedPage() async throws {
        let provider = InMemoryProvider(name: "a", executions: (0..<50).map { makeExecution(provider: "a", id: "e\($0)", second: Int64($0), status: .running) })
        let capped = service([provider], maxPageBytes: 4_096)
        let refused = await capped.list([("limit", "50"), ("include", "raw")], client: .anonymous, facts: facts)
        guard case .failure(let problem) = refused else {
            Issue.record("expected a problem")
            return
        }
        #expect(problem.kind == .responseTooLarge)
        #expect(problem.status == .badRequest)
        #expect(problem.invalidParams.map(\.name) == ["limit", "include"])
        #expect(problem.detail.contains("4096 bytes"))

        let small = try await capped.list([("limit", "2")], client: .anonymous, facts: facts).get()
        #expect(small.body.count <= 4_096)
        #expect(try JSONParser.parse(small.body)["data"]?.arrayValue?.count == 2)
    }

    @Test func theOffsetHintAfterTheLastRepresentableRowIsNone() {
        #expect(ExecutionsService.offsetAfter(41) == 42)
        #expect(ExecutionsService.offsetAfter(.max) == nil)
    }
}
