import GatewayTestSupport
import Synchronization
import GatewayHTTP
@testable import GatewayUpstream
import Testing

@Suite struct EndpointRetryTests {
    private func endpoint(
        _ transport: ScriptedTransport, clock: TestClock, policy: UpstreamPolicy = fastPolicy()
    ) -> UpstreamEndpoint {
        UpstreamEndpoint(name: "kaizen", policy: policy, transport: transport, clock: clock, jitter: { $0 })
    }

    @Test func retriesConnectionErrorsOfIdempotentCallsWithExponentialBackoff() async throws {
        let clock = TestClock()
        let start = clock.now()
        let transport = ScriptedTransport(steps: [
            .failure(.connection(reason: "reset")), .failure(.connection(reason: "reset")), response(200, body: "ok"),
        ])
        let result = try await endpoint(transport, clock: clock).execute(
            UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        #expect(result.body == Array("ok".utf8))
        #expect(transport.callCount == 3)
        // Jitter returns its upper bound here: 50 ms, then 100 ms.
        #expect(clock.sleepDeadlines == [start + 50 * millisecond, start + 150 * millisecond])
    }

    @Test func backoffIsDrawnBelowAnExponentialCeilingThatIsCapped() async throws {
        let clock = TestClock()
        let ceilings = Mutex<[UInt64]>([])
        var policy = fastPolicy(maxRetries: 4)
        policy.backoffMax = .nanoseconds(150 * millisecond)
        let transport = ScriptedTransport(steps: [.failure(.connection(reason: "refused"))])
        let endpoint = UpstreamEndpoint(
            name: "kaizen", policy: policy, transport: transport, clock: clock,
            jitter: { upper in
                ceilings.withLock { $0.append(upper) }
                return upper / 2
            })
        await #expect(throws: UpstreamError.connection(reason: "refused")) {
            try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        }
        #expect(ceilings.withLock { $0 } == [50, 100, 150, 150].map { $0 * millisecond })
        #expect(transport.callCount == 5)
    }

    @Test func doesNotRetryCallsNotMarkedIdempotent() async {
        let clock = TestClock()
        let transport = ScriptedTransport(steps: [.failure(.connection(reason: "reset")), response(200)])
        await #expect(throws: UpstreamError.connection(reason: "reset")) {
            try await endpoint(transport, clock: clock).execute(
                UpstreamRequest(method: .post, url: "http://kaizen.test/x"), options: makeOptions(idempotent: false))
        }
        #expect(transport.callCount == 1)
        #expect(clock.sleepDeadlines.isEmpty)
    }

    @Test(arguments: [502, 503, 504])
    func retriesGatewayStatuses(status: Int) async throws {
        let transport = ScriptedTransport(steps: [response(status), response(200)])
        _ = try await endpoint(transport, clock: TestClock()).execute(
            UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        #expect(transport.callCount == 2)
    }

    @Test(arguments: [400, 401, 404, 409, 429, 500, 501])
    func doesNotRetryOtherStatuses(status: Int) async {
        let transport = ScriptedTransport(steps: [response(status, body: "nope"), response(200)])
        await #expect(throws: UpstreamError.httpStatus(status: status, body: Array("nope".utf8), retryAfterSeconds: nil)) {
            try await endpoint(transport, clock: TestClock()).execute(
                UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        }
        #expect(transport.callCount == 1)
    }

    @Test func givesUpAfterMaxRetriesWithTheLastError() async {
        let transport = ScriptedTransport(steps: [response(502, body: "bad gateway")])
        let endpoint = endpoint(transport, clock: TestClock())
        await #expect(throws: UpstreamError.httpStatus(status: 502, body: Array("bad gateway".utf8), retryAfterSeconds: nil)) {
            try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        }
        #expect(transport.callCount == 3)
        let statistics = endpoint.statistics()
        #expect(statistics.attempts == 3)
        #expect(statistics.retries == 2)
        #expect(statistics.callsByOutcome[.httpError] == 1)
    }

    @Test func retryBudgetCapsRetriesToAFractionOfCalls() async {
        let clock = TestClock()
        var policy = fastPolicy(maxRetries: 2)
        policy.retryBudgetRatio = 0.2
        policy.retryBudgetMinimumPerWindow = 1
        policy.circuitBreaker.failureThreshold = 1000
        let transport = ScriptedTransport(steps: [.failure(.connection(reason: "down"))])
        let endpoint = endpoint(transport, clock: clock, policy: policy)
        for index in 0..<10 {
            await #expect(throws: UpstreamError.self) {
                try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/\(index)"), options: makeOptions())
            }
        }
        let statistics = endpoint.statistics()
        // 1 free retry plus 0.2 per call: after 10 calls at most 3 retries, where 20 were wanted.
        #expect(statistics.retries == 3)
        #expect(statistics.retriesDeniedByBudget == 10)  // every call was refused its next retry
        #expect(transport.callCount == 13)
    }

    @Test func timedOutAttemptsAreRetriedOnlyWithinTheOverallDeadline() async {
        let clock = TestClock()
        var policy = fastPolicy(maxRetries: 2, timeout: 1 * second)
        policy.perAttemptTimeout = .nanoseconds(300 * millisecond)
        let transport = ScriptedTransport { request, _ throws(UpstreamError) in
            // The attempt hangs until its own timeout.
            clock.advance(by: request.timeoutNanoseconds ?? 0)
            throw .timeout
        }
        await #expect(throws: UpstreamError.timeout) {
            try await endpoint(transport, clock: clock, policy: policy).execute(
                UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        }
        // 0-300 ms, backoff 50, 350-650 ms, backoff 100, 750-1000 ms: the last attempt gets what is left.
        #expect(transport.requests.map(\.timeoutNanoseconds) == [300, 300, 250].map { $0 * millisecond })
    }

    @Test func aTimeoutThatUsedTheWholeDeadlineIsNotRetried() async {
        let clock = TestClock()
        let transport = ScriptedTransport { request, _ throws(UpstreamError) in
            clock.advance(by: request.timeoutNanoseconds ?? 0)
            throw .timeout
        }
        let endpoint = endpoint(transport, clock: clock, policy: fastPolicy(timeout: 2 * second))
        await #expect(throws: UpstreamError.timeout) {
            try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        }
        #expect(transport.callCount == 1)
        #expect(transport.requests.first?.timeoutNanoseconds == 2 * second)
        #expect(endpoint.statistics().callsByOutcome[.timeout] == 1)
    }

    @Test func requestTimeoutCanOnlyShortenThePolicyDeadline() async throws {
        let transport = ScriptedTransport(steps: [response(200)])
        let endpoint = endpoint(transport, clock: TestClock(), policy: fastPolicy(timeout: 2 * second))
        _ = try await endpoint.execute(
            UpstreamRequest(url: "http://kaizen.test/x", timeoutNanoseconds: 500 * millisecond), options: makeOptions())
        _ = try await endpoint.execute(
            UpstreamRequest(url: "http://kaizen.test/x", timeoutNanoseconds: 50 * second), options: makeOptions())
        #expect(transport.requests.map(\.timeoutNanoseconds) == [500 * millisecond, 2 * second])
    }

    @Test func everyAttemptCarriesRequestIdAndTraceparentAndKeepsTheCredentialHeader() async throws {
        let transport = ScriptedTransport(steps: [.failure(.connection(reason: "reset")), response(200)])
        var headers: HTTPHeaders = ["Authorization": "Bearer secret", "X-Request-Id": "spoofed"]
        headers.add(name: "Accept", value: "application/json")
        _ = try await endpoint(transport, clock: TestClock()).execute(
            UpstreamRequest(url: "http://kaizen.test/x", headers: headers),
            options: UpstreamCallOptions(
                credentialKey: "k", isIdempotent: true, requestId: "req-42",
                traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
        #expect(transport.callCount == 2)
        for request in transport.requests {
            #expect(request.headers.values(for: "X-Request-Id") == ["req-42"])
            #expect(request.headers["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            #expect(request.headers["Authorization"] == "Bearer secret")
            #expect(request.headers["Accept"] == "application/json")
        }
    }

    @Test func cancellationDuringBackoffEndsTheCallAsCancelled() async {
        let clock = TestClock(autoAdvance: false)
        let transport = ScriptedTransport(steps: [.failure(.connection(reason: "reset")), response(200)])
        let endpoint = endpoint(transport, clock: clock)
        let task = Task { () async throws(UpstreamError) -> UpstreamResponse in
            try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        }
        #expect(await waitUntil { clock.pendingSleepers == 1 })
        task.cancel()
        let result = await task.result
        #expect(throws: UpstreamError.cancelled) { try result.get() }
        #expect(transport.callCount == 1)
        #expect(endpoint.statistics().callsByOutcome[.cancelled] == 1)
    }
}
